"""Per-request cost of RequestIdMiddleware against a floor, as ratios measured in one run (issue 15).

The floor is `_floor.py`'s, shared with `bench_headers.py`: the least a pure-ASGI middleware can do
for the same visible result, one static header on the response (its name does not change the
cost). RequestIdMiddleware runs in two cases: an id generated (the peer is not a trusted proxy;
128 random bits), and an id kept from a trusted proxy (the header checked).
The stacks are ASGI callables called directly with a prepared scope (no server), timed interleaved
in shuffled rounds with `bench_headers.py`'s machinery (CPU time, median over the rounds).
Overhead = cost - bare app cost; the goal is RequestIdMiddleware's overhead <= 2 x the floor's.

Run: ``uv run --no-sync python bench/bench_request_id.py [--rounds N] [--budget SECONDS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from c2c_headers import RequestIdMiddleware

# The sibling script's machinery (a script directory, not a package: imported by path at run time).
sys.path.insert(0, str(Path(__file__).resolve().parent))
_headers: Any = importlib.import_module("bench_headers")
Stack, make_scope, run = _headers.Stack, _headers.make_scope, _headers.run
FLOOR_NAME, FloorMiddleware, bare_app = _headers.FLOOR_NAME, _headers.FloorMiddleware, _headers.bare_app  # _floor.py's

TARGET_VS_FLOOR = 2.0
PROXY_ID = b"0f8fad5b-d9cb-469f-a165-70867728950e"


def build_stacks() -> list[Any]:
    untrusted = make_scope("/")
    untrusted["client"] = ("203.0.113.9", 50000)
    trusted = make_scope("/", [(b"x-request-id", PROXY_ID)])
    return [
        Stack("bare app", bare_app, make_scope("/"), "bare", None),
        Stack(FLOOR_NAME, FloorMiddleware(bare_app), make_scope("/"), "floor", None),
        Stack("request id, generated", RequestIdMiddleware(bare_app), untrusted, "ours", "generated"),
        Stack("request id, kept from a trusted proxy", RequestIdMiddleware(bare_app), trusted, "ours", "kept"),
    ]


def report(stacks: list[Any]) -> int:
    """Print the table and the target checks; return the number of missed targets."""
    cost = {stack.name: statistics.median(stack.samples) for stack in stacks}
    bare = cost["bare app"]
    floor = cost[FLOOR_NAME] - bare
    print(f"python {platform.python_version()}, {platform.machine()}, load average {os.getloadavg()[0]:.1f}")
    print(f"rounds: {len(stacks[0].samples)}, median CPU time per request; overhead = cost - bare app cost\n")
    print(f"| {'stack':<38} | {'cost µs':>8} | {'overhead µs':>11} | {'x floor':>8} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 13}|{'-' * 10}|")
    for stack in stacks:
        overhead = cost[stack.name] - bare
        ratio = "" if stack.family == "bare" else f"{overhead / floor:.1f}"
        print(f"| {stack.name:<38} | {cost[stack.name] / 1000:>8.2f} | {overhead / 1000:>11.2f} | {ratio:>8} |")
    print()
    missed = 0
    for stack in stacks:
        if stack.family != "ours":
            continue
        ratio = (cost[stack.name] - bare) / floor
        verdict = "PASS" if ratio <= TARGET_VS_FLOOR else "MISS"
        missed += verdict == "MISS"
        whole = cost[stack.name] / cost[FLOOR_NAME]
        print(f"{verdict}  {stack.name} overhead <= {TARGET_VS_FLOOR:g} x floor's: {ratio:.2f} (cost {whole:.2f} x)")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per stack and round")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    arguments = parser.parse_args()
    stacks = build_stacks()
    asyncio.run(run(stacks, arguments.rounds, arguments.budget))
    missed = report(stacks)
    return 1 if arguments.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
