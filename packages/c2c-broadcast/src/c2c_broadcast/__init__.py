"""c2c_broadcast: part of the c2c ASGI toolkit (see the package README)."""

from importlib.metadata import version as _version

__version__ = _version("c2c-broadcast")

__all__ = ["__version__"]
