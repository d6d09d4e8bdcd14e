"""Header engines: native (Rust) against python, per request, for 5 to 5000 rules, in one run.

Run: ``uv run --no-sync python bench/bench_engines.py`` (with c2c-headers[native] installed; build
the extension in release mode for meaningful numbers: ``maturin develop --release`` or the wheel).

Each rule set is the default rules plus N generated rules of five kinds (a path prefix each; plus a
host and a CSP nonce, or methods, or a content type, or a status range, or nothing), compiled by
c2c-headers' own compiler. Both engines answer the same requests, the same mix at every size (one
per kind, aimed at the last rules, plus one only the defaults match); rounds alternate
the engines and the table reports medians and ratios measured in this one run, never absolute
thresholds. Targets (issue 4): native >= 3x python at 500 rules, native cost at 5000 rules <= 2x
its cost at 5 rules.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from c2c_headers._engine import CompiledRule, Engine, native_engine
from c2c_headers._python_engine import PythonEngine
from c2c_headers._rules import compile_rules

SIZES = (5, 50, 500, 5000)
RESPONSE = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", b"1234"),
    (b"date", b"Wed, 25 Nov 2026 16:00:00 GMT"),
    (b"server", b"uvicorn"),
]


def rule_set(size: int) -> tuple[CompiledRule, ...]:
    """The default rules plus ``size`` rules of five kinds (by index modulo 5), one path prefix each."""
    config: dict[str, Any] = {}
    for index in range(size):
        rule: dict[str, Any] = {
            "path_match": rf"^/svc{index}/(api|static)/",
            "headers": {f"X-Svc-{index % 50}": f"v{index}", "Server": None},
        }
        kind = index % 5
        if kind == 0:
            rule["netloc_match"] = rf"^app{index % 97}\.example\.com(:\d+)?$"
            rule["headers"]["Content-Security-Policy"] = {
                "default-src": ["'self'"],
                "script-src": ["'self'", "'nonce'"],
            }
        elif kind == 1:
            rule["methods"] = ["GET", "HEAD"]
        elif kind == 2:
            rule["content_type_match"] = r"^text/html"
        elif kind == 3:
            rule["status_code"] = (200, 299)
        config[f"rule{index}"] = rule
    return compile_rules(config)


def requests(size: int) -> list[tuple[str, str, str]]:
    """The same workload at every size: one request per kind aimed at the last five rules (the
    highest pattern ids), one that only the defaults match, one HEAD to a static path."""
    out = [(f"app{index % 97}.example.com", f"/svc{index}/api/items/42", "GET") for index in range(size - 5, size)]
    out.append(("www.example.com", "/unknown/path/that/matches/only/the/defaults", "POST"))
    out.append((f"app{(size - 5) % 97}.example.com:8443", f"/svc{size - 4}/static/app.js", "HEAD"))
    return out


def per_request(engine: Engine, batch: list[tuple[str, str, str]], loops: int) -> float:
    """Seconds per request for match + apply."""
    match, apply = engine.match, engine.apply
    start = time.perf_counter()
    for _ in range(loops):
        for netloc, path, method in batch:
            handle = match(netloc, path, method)
            if handle is not None:
                apply(handle, 200, RESPONSE)
    return (time.perf_counter() - start) / (loops * len(batch))


def match_only(engine: Engine, batch: list[tuple[str, str, str]], loops: int) -> float:
    """Seconds per ``match`` call."""
    match = engine.match
    start = time.perf_counter()
    for _ in range(loops):
        for netloc, path, method in batch:
            match(netloc, path, method)
    return (time.perf_counter() - start) / (loops * len(batch))


def interleaved(
    engines: dict[str, Engine],
    measure: Callable[[Engine, list[tuple[str, str, str]], int], float],
    batch: Any,
    rounds: int,
) -> dict[str, float]:
    """Median over ``rounds`` of each engine's cost; the engines alternate within every round."""
    # Calibrate the loop count on the slowest engine so that a round lasts about 20 ms.
    slowest = max(measure(engine, batch, 1) for engine in engines.values())
    loops = max(1, int(0.02 / max(slowest * len(batch), 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for round_ in range(rounds):
        order = list(engines) if round_ % 2 == 0 else list(reversed(engines))
        for name in order:
            samples[name].append(measure(engines[name], batch, loops))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    native_module = importlib.import_module("c2c_headers_native")
    print(f"c2c_headers_native {native_module.__version__}; {args.rounds} interleaved rounds, medians")
    rows = []
    for size in args.sizes:
        rules = rule_set(size)
        start = time.perf_counter()
        native: Engine = native_engine(native_module, rules)  # as c2c-headers builds it
        native_build = time.perf_counter() - start
        start = time.perf_counter()
        python: Engine = PythonEngine(rules)
        python_build = time.perf_counter() - start
        engines = {"python": python, "native": native}
        batch = requests(size)
        full = interleaved(engines, per_request, batch, args.rounds)
        matching = interleaved(engines, match_only, batch, args.rounds)
        rows.append((size, len(rules), full, matching, python_build, native_build))
    base = rows[0][2]["native"]
    header = (
        f"{'rules':>6} {'py µs/req':>10} {'rs µs/req':>10} {'speedup':>8} {'py match/s':>11} {'rs match/s':>11}"
        f" {'speedup':>8} {'rs cost/first':>13} {'py build s':>10} {'rs build s':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, _count, full, matching, python_build, native_build in rows:
        print(
            f"{size:>6} {full['python'] * 1e6:>10.2f} {full['native'] * 1e6:>10.2f}"
            f" {full['python'] / full['native']:>7.1f}x"
            f" {1 / matching['python']:>11,.0f} {1 / matching['native']:>11,.0f}"
            f" {matching['python'] / matching['native']:>7.1f}x"
            f" {full['native'] / base:>12.2f}x {python_build:>10.3f} {native_build:>10.3f}"
        )


if __name__ == "__main__":
    main()
