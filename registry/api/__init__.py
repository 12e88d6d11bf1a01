"""HTTP: thin Starlette handlers that parse, authorize, call the model and shape the reply."""

from registry.api.app import create_app

__all__ = ["create_app"]
