"""simple-registry: an OCI distribution-spec container registry."""

__version__ = "0.1.0"
