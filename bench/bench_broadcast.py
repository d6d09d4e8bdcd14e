"""Benchmark: broadcast round trips to four replicas, c2c-broadcast against c2casgiutils 0.14.0, in one run.

Starts its own redis-server on a free loopback port, then for each implementation four replica
processes subscribed to `echo` and one caller process, all in the implementation's own
environment (the workspace venv for c2c-broadcast; the reference venv made by
`bench/setup-reference-env.sh` for c2casgiutils 0.14.0, never a workspace dependency). The
caller measures:

- the round-trip time of `broadcast("echo", ..., expect_answers=True)` answered by four replicas
  (p50, p99), and the resulting answered broadcasts per second (one caller, sequential calls);
- interoperability: two replicas of each library on one prefix, and a caller of each library that
  must get all four answers;
- fire-and-forget broadcasts per second (`expect_answers=False`, sequential), to the four
  replicas (which compete for the CPU with the caller on a small machine) and to a channel nobody
  listens to (the caller's own cost).

Usage:
    bash bench/setup-reference-env.sh            # once (or BENCH_REFERENCE_VENV=/path ...)
    uv run python bench/bench_broadcast.py [--calls 300] [--reference-calls 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_REFERENCE_VENV = HERE.parent / ".bench-venv"
REPLICAS = 4

# The same code drives both libraries: they share the API (`startup`, `subscribe`, `broadcast`).
WORKER = """
import asyncio, os, sys
{import_line}

async def echo(**params):
    return {{"pid": os.getpid(), "params": params}}

async def main():
    await broadcast.startup()
    await broadcast.subscribe("echo", echo)
    await asyncio.sleep(0.5)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

CALLER = """
import asyncio, json, logging, sys, time
{import_line}
logging.disable(logging.WARNING)
calls, fire_seconds = int(sys.argv[1]), float(sys.argv[2])

async def main():
    await broadcast.startup()
    await asyncio.sleep(0.5)
    for _ in range(max(calls // 10, 5)):  # warm-up
        await broadcast.broadcast("echo", {{"n": 0}}, expect_answers=True, timeout=10)
    samples, short = [], 0
    for n in range(calls):
        begin = time.perf_counter()
        answers = await broadcast.broadcast("echo", {{"n": n}}, expect_answers=True, timeout=10)
        samples.append(time.perf_counter() - begin)
        if sum(1 for a in answers if hasattr(a, "payload")) != {replicas}:
            short += 1
    rates = {{}}
    for channel in ("echo", "nobody"):
        sent, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < fire_seconds:
            await broadcast.broadcast(channel, {{"n": sent}})
            sent += 1
        rates[channel] = sent / (time.perf_counter() - begin)
    print(json.dumps({{"samples": samples, "short": short, "fire": rates["echo"], "alone": rates["nobody"]}}))

asyncio.run(main())
"""

IMPORTS = {
    "c2c-broadcast": "import c2c_broadcast as broadcast",
    "c2casgiutils 0.14.0": "from c2casgiutils import broadcast",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A throw-away redis-server on a free loopback port."""
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server not found (bash scripts/install-services.sh)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as directory:
        proc = subprocess.Popen(
            [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("redis-server did not start")
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def environment(port: int, prefix: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env["C2C__REDIS__URL"] = f"redis://127.0.0.1:{port}/0"
    env["C2C__REDIS__BROADCAST_PREFIX"] = prefix
    return env


@contextlib.contextmanager
def replicas(kinds: list[tuple[str, str]], env: dict[str, str]) -> Iterator[None]:
    """Run one replica per `(python, implementation name)` until the block ends."""
    workers = [
        subprocess.Popen(
            [python, "-c", WORKER.format(import_line=IMPORTS[name])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for python, name in kinds
    ]
    try:
        for worker, (_, name) in zip(workers, kinds, strict=True):
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if not line.startswith(b"READY"):
                sys.exit(f"{name}: a replica did not start")
        yield
    finally:
        for worker in workers:
            assert worker.stdin is not None
            with contextlib.suppress(OSError):
                worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
            if worker.stdout is not None:
                worker.stdout.close()


def run_caller(python: str, name: str, env: dict[str, str], calls: int, fire_seconds: float) -> dict[str, Any]:
    """Run the caller with `python`; return its measurements."""
    caller = subprocess.run(
        [python, "-c", CALLER.format(import_line=IMPORTS[name], replicas=REPLICAS), str(calls), str(fire_seconds)],
        capture_output=True,
        env=env,
        timeout=calls * 12 + 120,
        check=False,
    )
    if caller.returncode != 0:
        sys.exit(f"{name}: the caller failed:\n{caller.stderr.decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(caller.stdout.decode().strip().splitlines()[-1])
    return result


def measure(python: str, name: str, port: int, calls: int, fire_seconds: float) -> dict[str, Any]:
    """Four replicas and a caller of one implementation, on a prefix of their own."""
    env = environment(port, prefix=f"bench_{name.split()[0].replace('-', '_')}_")
    with replicas([(python, name)] * REPLICAS, env):
        return run_caller(python, name, env, calls, fire_seconds)


def interoperate(new_python: str, old_python: str, port: int) -> dict[str, dict[str, Any]]:
    """Two replicas of each library on one prefix; a caller of each library must get all four answers."""
    env = environment(port, prefix="bench_mixed_")
    # New callers wait that long for unregistered (0.14) receivers once the registered ones answered.
    env["C2C__BROADCAST__LEGACY_WAIT"] = "5"
    new, old = "c2c-broadcast", "c2casgiutils 0.14.0"
    with replicas([(new_python, new), (old_python, old)] * (REPLICAS // 2), env):
        return {name: run_caller(python, name, env, 20, 0.2) for python, name in ((new_python, new), (old_python, old))}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarise(results: list[dict[str, Any]]) -> dict[str, float]:
    """Pool the round-trip samples of every round; take the median of the per-round rates."""
    samples: list[float] = [sample for result in results for sample in result["samples"]]
    return {
        "p50_ms": percentile(samples, 0.50) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000,
        "answered_per_s": len(samples) / sum(samples),
        "fire_per_s": statistics.median(float(result["fire"]) for result in results),
        "alone_per_s": statistics.median(float(result["alone"]) for result in results),
        "short": float(sum(result["short"] for result in results)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=150, help="round trips per round for c2c-broadcast")
    parser.add_argument("--reference-calls", type=int, default=40, help="round trips per round for 0.14 (~100 ms each)")
    parser.add_argument("--fire-seconds", type=float, default=1.0, help="duration of each fire-and-forget phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the machine's load drifts)")
    args = parser.parse_args()

    venv = Path(os.environ.get("BENCH_REFERENCE_VENV", DEFAULT_REFERENCE_VENV))
    reference_python = venv / "bin" / "python"
    if not reference_python.exists():
        sys.exit(f"no reference environment at {venv}: run bash bench/setup-reference-env.sh (BENCH_REFERENCE_VENV)")

    with redis_server() as port:
        new_results, old_results = [], []
        for _ in range(args.rounds):
            new_results.append(measure(sys.executable, "c2c-broadcast", port, args.calls, args.fire_seconds))
            old_results.append(
                measure(str(reference_python), "c2casgiutils 0.14.0", port, args.reference_calls, args.fire_seconds)
            )
        new, old = summarise(new_results), summarise(old_results)
        mixed = interoperate(sys.executable, str(reference_python), port)

    print(f"\nbroadcast to {REPLICAS} replica processes, one redis-server on loopback, one sequential caller")
    print(
        f"{args.rounds} alternating rounds; per round c2c-broadcast {args.calls} calls, "
        f"c2casgiutils 0.14.0 {args.reference_calls} calls; rates are medians of the rounds\n"
    )
    header = f"{'metric':<34}{'c2casgiutils 0.14.0':>20}{'c2c-broadcast':>16}{'ratio':>10}"
    print(header)
    print("-" * len(header))
    rows = [
        ("round trip p50 (ms, lower better)", "p50_ms", True),
        ("round trip p99 (ms, lower better)", "p99_ms", True),
        ("answered broadcasts/s", "answered_per_s", False),
        ("fire-and-forget broadcasts/s", "fire_per_s", False),
        ("  same, channel nobody listens to", "alone_per_s", False),
    ]
    for label, key, lower_is_better in rows:
        ratio = old[key] / new[key] if lower_is_better else new[key] / old[key]
        print(f"{label:<34}{old[key]:>20.2f}{new[key]:>16.2f}{ratio:>9.1f}x")
    print(f"{'calls with fewer than 4 answers':<34}{old['short']:>20.0f}{new['short']:>16.0f}")
    print("\nratio > 1: c2c-broadcast is better by that factor")
    print(f"\ninteroperability, {REPLICAS // 2} replicas of each library on one prefix, 20 calls per caller:")
    for name, result in mixed.items():
        print(f"  {name} caller: {20 - result['short']}/20 calls got all {REPLICAS} answers")


if __name__ == "__main__":
    main()
