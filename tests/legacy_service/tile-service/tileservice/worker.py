"""The seeding worker: consumes the jobs queued in Redis, obeys the log levels set in the c2c console.

Run as `python -m tileservice.worker [--once]`.
"""

import argparse
import asyncio
import json
import logging

import c2casgiutils
from c2casgiutils import broadcast, redis_utils
from tileservice.config import settings

# By name: run with `python -m`, __name__ is "__main__".
_LOG = logging.getLogger("tileservice.worker")


async def startup() -> None:
    """What every worker process does first: broadcast, then the log levels stored by the console."""
    await broadcast.startup()
    await c2casgiutils.tools.logging_.startup(None)


async def run(once: bool) -> dict[str, object]:
    """Process the queued jobs; with `once`, stop when the queue is empty."""
    await startup()
    master, _, _ = redis_utils.get()
    if master is None:
        message = "The worker needs Redis (C2C__REDIS__URL)"
        raise RuntimeError(message)
    processed: list[str] = []
    while True:
        raw = await master.rpop(settings.jobs_key)
        if raw is None:
            if once:
                break
            await asyncio.sleep(1)
            continue
        if not isinstance(raw, str | bytes):
            message = f"Unexpected job {raw!r}"
            raise TypeError(message)
        job = json.loads(raw)
        _LOG.debug("Seeding %s up to zoom %s", job["layer"], job["zoom"])
        processed.append(job["layer"])
    return {
        "processed": processed,
        "level": logging.getLevelName(_LOG.level),
    }


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description="Tile seeding worker")
    parser.add_argument("--once", action="store_true", help="stop when the queue is empty")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(asyncio.run(run(args.once))))


if __name__ == "__main__":
    main()
