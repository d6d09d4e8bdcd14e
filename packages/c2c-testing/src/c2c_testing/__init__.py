"""c2c_testing: part of the c2c ASGI toolkit (see the package README)."""

from importlib.metadata import version as _version

__version__ = _version("c2c-testing")

__all__ = ["__version__"]
