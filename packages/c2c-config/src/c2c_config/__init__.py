"""c2c_config: part of the c2c ASGI toolkit (see the package README)."""

from importlib.metadata import version as _version

__version__ = _version("c2c-config")

__all__ = ["__version__"]
