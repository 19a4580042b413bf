"""The prediction service: ``create_app()`` for ASGI servers, ``server.serve()`` for the CLI."""

from digits.api.app import create_app

__all__ = ["create_app"]
