"""The prediction service: ``create_app()`` for ASGI servers, ``server.serve()`` for the CLI.

``create_app`` is imported lazily so that ``digits serve`` can set up logging before the
heavy imports (alembic, ONNX Runtime) log anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digits.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from digits.api.app import create_app

        return create_app
    raise AttributeError(name)
