"""`c2casgiutils.lifespan`: the toolkit's lifespan, alone or around the application's own.

```python
app = FastAPI(lifespan=c2casgiutils.lifespan)                        # startup(app) ... shutdown()
app = FastAPI(lifespan=c2casgiutils.lifespan.including(my_lifespan))  # with the application's own
```

`including(*lifespans)` nests the application's lifespans inside the toolkit's: `startup(app)` runs
first, then each given lifespan enters in order; at the end they exit in reverse order, then
`shutdown()` runs, also when one of them failed. So the toolkit (broadcast, logging tool, Redis) is
up while the application starts and still up while it stops. The state each lifespan yields
(Starlette's lifespan state, `request.state` in the endpoints) is merged, a later lifespan's keys
winning; when none yields a state, `None` is yielded, as a stateless lifespan does, so that a server
without lifespan state still runs it.

Only the standard library is imported here: `import c2casgiutils` stays cheap.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import c2casgiutils

AppLifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
"""What `FastAPI(lifespan=...)` takes: a function of the application returning an async context manager."""

__all__ = ["AppLifespan", "Lifespan"]


class Lifespan:
    """The toolkit's lifespan around the application's lifespans (see the module's docstring)."""

    def __init__(self, *lifespans: AppLifespan) -> None:
        for lifespan in lifespans:
            if inspect.isasyncgenfunction(lifespan) or inspect.isgeneratorfunction(lifespan):
                raise TypeError(
                    f"{getattr(lifespan, '__qualname__', lifespan)!s} is a generator function: "
                    "decorate it with @contextlib.asynccontextmanager"
                )
            if not callable(lifespan):
                raise TypeError(f"a lifespan is a function of the application, got {lifespan!r}")
        self._lifespans = lifespans

    def including(self, *lifespans: AppLifespan) -> Lifespan:
        """A new lifespan that runs `lifespans` (in order) inside this one's."""
        return Lifespan(*self._lifespans, *lifespans)

    def __call__(self, app: Any) -> AbstractAsyncContextManager[Any]:
        """The async context manager of one run (`AbstractAsyncContextManager[Mapping[str, Any] | None]`).

        Typed `Any` so that it fits both of FastAPI's lifespan types (stateless and stateful).
        """
        return self._run(app)

    @contextlib.asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[dict[str, Any] | None]:
        await c2casgiutils.startup(app)
        try:
            async with contextlib.AsyncExitStack() as stack:
                state: dict[str, Any] | None = None
                for lifespan in self._lifespans:
                    yielded = await stack.enter_async_context(lifespan(app))
                    if yielded is not None:
                        state = {**(state or {}), **yielded}
                yield state
        finally:
            await c2casgiutils.shutdown()

    def __repr__(self) -> str:
        names = ", ".join(getattr(lifespan, "__qualname__", repr(lifespan)) for lifespan in self._lifespans)
        return f"c2casgiutils.lifespan.including({names})" if names else "c2casgiutils.lifespan"
