"""What the header engines read from an ASGI ``http`` scope: netloc, path relative to root_path, method.

`request_target` is the one definition. The native engine reads well-formed scopes itself and is
handed this function at construction (`c2c_headers._engine.native_engine`) for any other scope, so
that both engines see the same request and raise the same errors.
"""

from __future__ import annotations

from typing import Final

from c2c_headers.types import Scope

_HOST: Final = b"host"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def request_target(scope: Scope) -> tuple[str, str, str]:
    """``(netloc, path, method)``: what the rules' ``netloc_match``, ``path_match`` and ``methods`` see.

    - netloc: ``host[:port]`` as the client addressed it: the first ``Host`` header (latin-1), else
      the server address, without the scheme's default port; ``""`` when there is neither.
    - path: the request path relative to ``root_path``, with its leading slash (``/`` at the very
      root); the prefix is cut at a segment boundary only (``/app`` is not the root of ``/apple``).
    - method: ``scope["method"]``.

    One function, no helpers: it runs on every request of the Python engine.

    Raises:
        KeyError: the scope has no ``method``.
        TypeError: the path or the method is not a str (an ASGI server bug: both are str by spec).
    """
    for name, value in scope.get("headers", ()):
        if name == _HOST:
            netloc: str = value.decode("latin-1")
            break
    else:
        server = scope.get("server")
        if server is None:
            netloc = ""
        else:
            host, port = server
            if port is None or _DEFAULT_PORTS.get(scope.get("scheme", "http")) == port:
                netloc = str(host)
            else:
                netloc = f"{host}:{port}"
    path = scope.get("path", "/")  # Any: whatever the scope holds, checked below
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest:
            path = "/"
        elif rest[0] == "/":
            path = rest
    method = scope["method"]
    if not isinstance(path, str) or not isinstance(method, str):
        raise TypeError(
            f"ASGI scope: path and method must be str, got {type(path).__name__} and {type(method).__name__}"
        )
    return netloc, path, method
