"""The header stacks of `bench_load.py`, in process, with warm and with cold CPU caches.

Why a real server sees about three times the in-process cost of ArmorHeader + Forwarded: between
two requests, the server, the event loop and the framework run tens of microseconds of other code
and evict what the middlewares touched (their code, their caches, their rule tables). This script
calls each stack on a scope like the one `bench_load.py`'s requests produce (``X-Forwarded-For/-Proto/-Host``
from 127.0.0.1, `bench_headers.py`'s; the same small JSON answer, the floor adding the very headers the armor
adds), once with nothing in between (warm) and once after writing one byte in every 64 of a
``--thrash`` MiB buffer (cold: every cache line of the caches replaced), and times each request
alone. Medians over interleaved rounds; overheads are against the bare app and the floor.

Usage: ``uv run --no-sync python bench/bench_cold.py [--rounds 15] [--requests 300] [--thrash 8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from c2c_headers import ArmorHeaderMiddleware, ForwardedHeadersMiddleware
from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send

# bench_load.py's floor and bench_headers.py's scope, from the script directory (not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
_load: Any = importlib.import_module("bench_load")
_headers: Any = importlib.import_module("bench_headers")

JSON_HEADERS = [(b"content-length", b"2"), (b"content-type", b"application/json")]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The JSON answer of `bench_load.py`'s app, without FastAPI (the same for every stack)."""
    await send({"type": "http.response.start", "status": 200, "headers": list(JSON_HEADERS)})
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(message: Message) -> None:
    return None


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope() -> Scope:
    """What uvicorn hands over for one of the load benchmark's requests (new objects every time)."""
    scope: Scope = _headers.make_scope("/", _headers.FORWARDED_HEADERS)
    return scope


def stacks() -> dict[str, ASGIApp]:
    """The stacks, by name (the native rows when c2c-headers-native is installed)."""
    found: dict[str, ASGIApp] = {
        "bare": bare_app,
        "floor: static headers": _load._StaticHeaders(bare_app, _load._armor_headers()),
    }
    engines = ["python"] + (["native"] if importlib.util.find_spec("c2c_headers_native") else [])
    for engine in engines:
        found[f"forwarded [{engine}]"] = ForwardedHeadersMiddleware(bare_app, trusted_hosts="127.0.0.1", engine=engine)
        found[f"armor [{engine}]"] = ArmorHeaderMiddleware(bare_app, engine=engine)
        found[f"armor+fwd [{engine}]"] = ForwardedHeadersMiddleware(
            ArmorHeaderMiddleware(bare_app, engine=engine), trusted_hosts="127.0.0.1", engine=engine
        )
    return found


def timed(app: ASGIApp, requests: int, evict: Callable[[], None]) -> float:
    """The median time of one request (ns), `evict` run before each (outside the timing)."""
    times: list[float] = []
    clock = time.perf_counter
    for _ in range(requests):
        evict()
        scope = _scope()
        started = clock()
        coroutine = app(scope, _receive, _send)
        with contextlib.suppress(StopIteration):
            coroutine.send(None)  # type: ignore[attr-defined]  # nothing here suspends
        times.append(clock() - started)
    return statistics.median(times) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--requests", type=int, default=300, help="requests per stack and round (default 300)")
    parser.add_argument("--thrash", type=int, default=8, help="MiB written between cold requests (default 8)")
    options = parser.parse_args()
    buffer = bytearray(options.thrash << 20)
    zeros = bytes(len(buffer[::64]))

    def cold() -> None:
        buffer[::64] = zeros

    def warm() -> None:
        return None

    apps = stacks()
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(options.rounds):
        for mode, evict in (("warm", warm), ("cold", cold)):
            for name, app in apps.items():
                results.setdefault((mode, name), []).append(timed(app, options.requests, evict))
    print(
        f"{options.rounds} rounds x {options.requests} requests, cold: {options.thrash} MiB written before each request"
    )
    columns = "| warm ns | over bare | over floor | cold ns | over bare | over floor | cold/warm over floor |"
    print(f"| {'stack':22} {columns}")
    print(f"|{'-' * 24}|---------|-----------|------------|---------|-----------|------------|----------------------|")
    medians = {key: statistics.median(values) for key, values in results.items()}
    for name in apps:
        row = [f"| {name:22} "]
        over_floor: list[float] = []
        for mode in ("warm", "cold"):
            value = medians[(mode, name)]
            bare = medians[(mode, "bare")]
            floor = medians[(mode, "floor: static headers")]
            over_floor.append(value - floor)
            row.append(f"| {value:7.0f} | {value - bare:+9.0f} | {value - floor:+10.0f} ")
        ratio = over_floor[1] / over_floor[0] if over_floor[0] > 0 else float("nan")
        row.append(f"| {ratio:20.1f} |" if name not in ("bare", "floor: static headers") else f"| {'':20} |")
        print("".join(row))


if __name__ == "__main__":
    main()
