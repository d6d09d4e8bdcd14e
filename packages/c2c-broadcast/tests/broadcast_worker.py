"""A replica for the multi-process tests (run as a script, not collected).

Starts the broadcaster from the `C2C__` environment, subscribes `echo`, `fail` and `slow`, prints
`READY <pid>` once connected, and shuts down cleanly on SIGTERM or when stdin closes, printing
`STATUS <json>` (its broadcaster's counters and answer-queue figures) then `STOPPED`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from typing import Any

import c2c_broadcast
from c2c_config.redis import reset_factory


async def echo(**params: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "params": params}


async def fail(**params: Any) -> None:
    raise RuntimeError("worker failure")


async def slow(*, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slow done"


async def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: None if sys.stdin.read(1) else stop.set())
    await c2c_broadcast.startup()
    for name, handler in (("echo", echo), ("fail", fail), ("slow", slow)):
        await c2c_broadcast.subscribe(name, handler)
    async with asyncio.timeout(30):
        while not c2c_broadcast.status().healthy:  # noqa: ASYNC110 - the status is a snapshot, not an event
            await asyncio.sleep(0.05)
    print(f"READY {os.getpid()}", flush=True)
    await stop.wait()
    loop.remove_reader(sys.stdin.fileno())
    status = dataclasses.asdict(c2c_broadcast.status())
    print("STATUS " + json.dumps({key: status.get(key) for key in ("counters", "answers_dropped")}), flush=True)
    await c2c_broadcast.shutdown()
    await reset_factory()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
