"""Per-request cost of the header middlewares, as ratios measured in one run (never a timed test).

Every stack is an ASGI callable called directly with a prepared scope (no server, no network):
a bare app, the floor (a minimal pure-ASGI middleware adding one static header), our
ArmorHeaderMiddleware (defaults; a nonce rule; 50 and 500 path rules) on every available engine,
our ForwardedHeadersMiddleware (each engine: who writes a known rewrite), and the same stacks
built from the reference ``c2casgiutils`` 0.14.0. The 50-path-rules and the nonce stacks also run
with a distinct path on every request (each still matching the same rules): a cache of matched
rules that only wins on repeated paths must not hide the cost of a miss. Every request gets a fresh
path string (as a server decodes one per request), equal to the stack's own path except in the
distinct-paths rows. The stacks are timed
interleaved (round after round, in a shuffled order), each round running many requests; the
per-request median over the rounds is kept. Overhead = cost - bare cost.

Setup (the reference is never a workspace dependency): ``bench/setup-reference-env.sh``, then
``.bench-venv/bin/python bench/bench_headers.py``. Run from another environment without
``c2casgiutils``, the script re-executes itself with ``.bench-venv/bin/python`` when it exists, else
it measures our stacks only and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.util
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware, ForwardedHeadersMiddleware
from c2c_headers.types import ASGIApp, Message, Receive

# The floor shared with bench_request_id.py (a script directory, not a package: imported by path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
_floor: Any = importlib.import_module("_floor")
FLOOR_NAME: str = _floor.FLOOR_NAME
FloorMiddleware, bare_app = _floor.FloorMiddleware, _floor.bare_app

BENCH_VENV = Path(__file__).resolve().parent.parent / ".bench-venv"
TARGET_ARMOR_VS_FLOOR = 5.0  # issue 3, either engine
TARGET_NATIVE_VS_FLOOR = 2.5  # issue 4: the native engine with the default rules
TARGET_ARMOR_VS_REFERENCE = 30.0
TARGET_FORWARDED_VS_FLOOR = 3.0
TARGET_PYTHON_NONCE_VS_FLOOR = 6.0  # issue 17: the python engine with a nonce rule
TARGET_PYTHON_PATH_RULES_VS_FLOOR = 8.0  # issue 17: 50 path rules, repeated and distinct paths
TARGET_NATIVE_PATH_RULES_VS_FLOOR = 3.0  # issue 17: the native engine keeps its figure
PATH_RULES_STACKS = ("armor 50 path rules", "armor 50 path rules, distinct paths")
NONCE_STACKS = ("armor nonce rule", "armor nonce rule, distinct paths")


def make_scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """A complete http scope as uvicorn builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"www.example.com"),
            (b"user-agent", b"bench"),
            (b"accept", b"text/html"),
            *(headers or []),
        ],
        "state": {},
    }


FORWARDED_HEADERS = [
    (b"x-forwarded-for", b"203.0.113.7"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"public.example.com"),
]


def path_rules(count: int, leading_slash: bool) -> dict[str, Any]:
    """``count`` rules on distinct path prefixes (the reference matches paths without their slash)."""
    slash = "/" if leading_slash else ""
    return {
        f"section{index}": {"path_match": rf"^{slash}section{index}/", "headers": {"X-Section": str(index)}}
        for index in range(count)
    }


def nonce_rules(leading_slash: bool) -> dict[str, Any]:
    """A page whose CSP carries a nonce."""
    slash = "/" if leading_slash else ""
    return {
        "page": {
            "path_match": rf"^{slash}page",
            "headers": {"Content-Security-Policy": {"default-src": ["'self'"], "script-src": ["'self'", CSP_NONCE]}},
        }
    }


def section_path(number: int) -> str:
    """The distinct paths of the 50-path-rules stack: each matches one rule (``^/section<n % 50>/``)."""
    return f"/section{number % 50}/item{number}"


def page_path(number: int) -> str:
    """The distinct paths of the nonce stack: each matches the nonce rule (``^/page``)."""
    return f"/page/{number}"


class Stack:
    """One measured configuration: an ASGI callable and the request it serves.

    With ``distinct`` the path of every request is new (``distinct(n)``, n never repeating within
    the run), else it equals the scope's own path.
    """

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        scope: dict[str, Any],
        family: str,
        compare: str | None,
        distinct: Callable[[int], str] | None = None,
    ) -> None:
        self.name = name
        self.app = app
        self.scope = scope
        self.family = family  # "bare", "floor", "ours", "reference"
        self.compare = compare  # the key shared by our stack and the reference's equivalent
        self.distinct = distinct
        self.served = 0  # requests served so far (numbers the distinct paths)
        self.samples: list[float] = []

    def paths(self, count: int) -> list[str]:
        """The paths of the next ``count`` requests, each a new str object (built before timing)."""
        first, self.served = self.served, self.served + count
        if self.distinct is not None:
            return [self.distinct(number) for number in range(first, first + count)]
        path: str = self.scope["path"]
        return [path[:1] + path[1:] for _ in range(count)]  # equal, but a new object (hash not cached)


def build_stacks(engines: list[str], with_reference: bool) -> list[Stack]:
    """Every stack of the run; our armor stacks once per engine."""
    home, page = make_scope("/"), make_scope("/page")
    stacks = [
        Stack("bare app", bare_app, home, "bare", None),
        Stack(FLOOR_NAME, FloorMiddleware(bare_app), home, "floor", None),
    ]
    for engine in engines:
        for key, config, scope in (
            ("defaults", None, home),
            ("nonce rule", nonce_rules(True), page),
            ("50 path rules", path_rules(50, True), make_scope("/section25/x")),
            ("500 path rules", path_rules(500, True), make_scope("/section250/x")),
        ):
            app = ArmorHeaderMiddleware(bare_app, config, engine=engine)
            stacks.append(Stack(f"armor {key} [{engine}]", app, scope, "ours", f"armor {key}"))
        for key, config, distinct in (
            ("armor nonce rule, distinct paths", nonce_rules(True), page_path),
            ("armor 50 path rules, distinct paths", path_rules(50, True), section_path),
        ):
            app = ArmorHeaderMiddleware(bare_app, config, engine=engine)
            stacks.append(Stack(f"{key} [{engine}]", app, make_scope(distinct(0)), "ours", key, distinct))
    forwarded_scope = make_scope("/", FORWARDED_HEADERS)
    for engine in engines:
        forwarded = ForwardedHeadersMiddleware(bare_app, engine=engine)
        stacks.append(Stack(f"forwarded x-forwarded [{engine}]", forwarded, forwarded_scope, "ours", "forwarded"))
    if with_reference:
        # Only in the bench venv; imported by name so that type checkers do not resolve it to the
        # workspace's own `c2casgiutils` (c2c-all, which has the same import name).
        reference: Any = importlib.import_module("c2casgiutils.headers")

        for key, config, scope in (
            ("defaults", None, home),
            ("nonce rule", nonce_rules(False), page),
            ("50 path rules", path_rules(50, False), make_scope("/section25/x")),
            ("500 path rules", path_rules(500, False), make_scope("/section250/x")),
        ):
            app = reference.ArmorHeaderMiddleware(bare_app, config)
            stacks.append(Stack(f"reference armor {key}", app, scope, "reference", f"armor {key}"))
        for key, config, distinct in (
            ("armor nonce rule, distinct paths", nonce_rules(False), page_path),
            ("armor 50 path rules, distinct paths", path_rules(50, False), section_path),
        ):
            app = reference.ArmorHeaderMiddleware(bare_app, config)
            stacks.append(Stack(f"reference {key}", app, make_scope(distinct(0)), "reference", key, distinct))
        stacks.append(
            Stack(
                "reference forwarded",
                reference.ForwardedHeadersMiddleware(bare_app),
                forwarded_scope,
                "reference",
                "forwarded",
            )
        )
    return stacks


async def _noop_send(message: Message) -> None:
    return None


def _receive_factory() -> Callable[[], Receive]:
    request: Message = {"type": "http.request", "body": b"", "more_body": False}

    def make() -> Receive:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return request
            await asyncio.Event().wait()  # a client that stays connected until the response ends
            return {"type": "http.disconnect"}

        return receive

    return make


async def time_stack(stack: Stack, iterations: int) -> float:
    """Nanoseconds per request over ``iterations`` requests (fresh scope copy, path and receive each time)."""
    app, scope, make_receive = stack.app, stack.scope, _receive_factory()
    paths = stack.paths(iterations)
    # CPU time of this process: on a shared machine, time spent preempted is not the stack's cost.
    start = time.process_time_ns()
    for path in paths:
        request = dict(scope)
        request["path"] = path
        await app(request, make_receive(), _noop_send)
    return (time.process_time_ns() - start) / iterations


async def check_stack(stack: Stack) -> None:
    """One request, verifying the stack really answers (a broken stack must not look fast)."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await stack.app(dict(stack.scope), _receive_factory()(), send)
    starts = [message for message in messages if message["type"] == "http.response.start"]
    if len(starts) != 1 or starts[0]["status"] != 200:
        raise RuntimeError(f"{stack.name}: unexpected response {messages!r}")


async def run(stacks: list[Stack], rounds: int, budget: float) -> None:
    """Calibrate the iterations of each stack to ``budget`` seconds, then time interleaved rounds."""
    iterations = {}
    for stack in stacks:
        await check_stack(stack)
        await time_stack(stack, 50)  # warm-up (caches, specialisation)
        per_request = await time_stack(stack, 200)
        iterations[stack.name] = max(20, int(budget * 1e9 / per_request))
    order = list(stacks)
    gc.collect()
    gc.disable()  # as timeit does: collections land at random in one stack or another
    try:
        for _ in range(rounds):
            random.shuffle(order)
            for stack in order:
                stack.samples.append(await time_stack(stack, iterations[stack.name]))
            gc.collect()
    finally:
        gc.enable()


def report(stacks: list[Stack], engines: list[str], with_reference: bool) -> int:
    """Print the table and the target checks; return the number of missed targets."""
    cost = {stack.name: statistics.median(stack.samples) for stack in stacks}
    bare = cost["bare app"]
    floor = cost[FLOOR_NAME] - bare
    reference = {stack.compare: cost[stack.name] - bare for stack in stacks if stack.family == "reference"}
    print(f"python {platform.python_version()}, {platform.machine()}, engines: {', '.join(engines)}")
    print(f"rounds: {len(stacks[0].samples)}, median CPU time per request; overhead = cost - bare app cost\n")
    header = f"| {'stack':<46} | {'cost µs':>8} | {'overhead µs':>11} | {'x floor':>8} | {'reference / ours':>16} |"
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for stack in stacks:
        overhead = cost[stack.name] - bare
        vs_floor = "" if stack.family == "bare" else f"{overhead / floor:.1f}"
        vs_reference = ""
        if stack.family == "ours" and stack.compare in reference:
            vs_reference = f"{reference[stack.compare] / overhead:.0f}"
        print(
            f"| {stack.name:<46} | {cost[stack.name] / 1000:>8.2f} | {overhead / 1000:>11.2f} | {vs_floor:>8} |"
            f" {vs_reference:>16} |"
        )
    missed = 0
    print()
    for engine in engines:
        ratio = (cost[f"armor defaults [{engine}]"] - bare) / floor
        target = TARGET_NATIVE_VS_FLOOR if engine == "native" else TARGET_ARMOR_VS_FLOOR
        missed += _target(f"armor defaults [{engine}] <= {target:g} x floor", ratio <= target, f"{ratio:.1f}")
        if with_reference:
            ratio = reference["armor defaults"] / (cost[f"armor defaults [{engine}]"] - bare)
            ok = ratio >= TARGET_ARMOR_VS_REFERENCE
            missed += _target(
                f"armor defaults [{engine}] >= {TARGET_ARMOR_VS_REFERENCE:g} x lower than reference", ok, f"{ratio:.0f}"
            )
    missed += _issue_17_targets(cost, bare, floor, engines)
    for engine in engines:
        ratio = (cost[f"forwarded x-forwarded [{engine}]"] - bare) / floor
        missed += _target(
            f"forwarded [{engine}] <= {TARGET_FORWARDED_VS_FLOOR:g} x floor",
            ratio <= TARGET_FORWARDED_VS_FLOOR,
            f"{ratio:.1f}",
        )
    return missed


def _issue_17_targets(cost: dict[str, float], bare: float, floor: float, engines: list[str]) -> int:
    """The nonce (python) and 50-path-rules targets, on repeated and on distinct paths."""
    missed = 0
    for engine in engines:
        checks = [(key, TARGET_NATIVE_PATH_RULES_VS_FLOOR) for key in PATH_RULES_STACKS]
        if engine == "python":
            checks = [(key, TARGET_PYTHON_NONCE_VS_FLOOR) for key in NONCE_STACKS]
            checks += [(key, TARGET_PYTHON_PATH_RULES_VS_FLOOR) for key in PATH_RULES_STACKS]
        for key, target in checks:
            ratio = (cost[f"{key} [{engine}]"] - bare) / floor
            missed += _target(f"{key} [{engine}] <= {target:g} x floor", ratio <= target, f"{ratio:.1f}")
    return missed


def _target(label: str, ok: bool, value: str) -> int:
    print(f"{'PASS' if ok else 'MISS'}  {label}: {value}")
    return 0 if ok else 1


def main() -> int:
    """Parse the options, pick the engines and the reference, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per stack and round (default 0.02)")
    parser.add_argument("--no-reference", action="store_true", help="measure our stacks only")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    options = parser.parse_args()

    has_reference = importlib.util.find_spec("c2casgiutils") is not None
    bench_python = BENCH_VENV / "bin" / "python"
    if (
        not has_reference
        and not options.no_reference
        and bench_python.exists()
        and "C2C_BENCH_REEXEC" not in os.environ
    ):
        os.environ["C2C_BENCH_REEXEC"] = "1"
        os.execv(str(bench_python), [str(bench_python), *sys.argv])  # noqa: S606 (our own bench venv)
    with_reference = has_reference and not options.no_reference
    if not with_reference and not options.no_reference:
        print("reference c2casgiutils not installed: run bench/setup-reference-env.sh for the reference columns\n")
    engines = ["python"]
    if importlib.util.find_spec("c2c_headers_native") is not None:
        engines.append("native")
    stacks = build_stacks(engines, with_reference)
    asyncio.run(run(stacks, options.rounds, options.budget))
    missed = report(stacks, engines, with_reference)
    return 1 if missed and options.check else 0


if __name__ == "__main__":
    sys.exit(main())
