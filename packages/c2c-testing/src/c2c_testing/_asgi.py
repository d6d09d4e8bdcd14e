"""An ASGI application served by a real uvicorn in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from c2c_testing._net import LOOPBACK, free_port, wait_for_port


@contextlib.contextmanager
def serve_asgi(app: Any, *, name: str = "asgi-app", **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn (h11, no websockets, no lifespan unless `options` say so) on a free
    127.0.0.1 port, in a thread; yield its base URL (`http://127.0.0.1:<port>`); stop it on exit.

    For stand-ins of outside services (GitHub, Sentry is `_sentry_stand_in`'s) and applications
    that a real client must reach over HTTP. `options` are more `uvicorn.Config` arguments. Needs
    uvicorn, which every package that serves ASGI has in its tests.
    """
    import uvicorn

    port = free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "off", "ws": "none", "http": "h11", **options}
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, **settings))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        wait_for_port(LOOPBACK, port)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError(f"{name}: uvicorn did not stop within 10 s")
