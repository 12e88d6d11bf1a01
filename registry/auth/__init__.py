"""Who is asking, and may they: the seam between HTTP and the access policy."""

from registry.auth.gate import Gate
from registry.auth.scopes import Need, Principal

__all__ = ["Gate", "Need", "Principal"]
