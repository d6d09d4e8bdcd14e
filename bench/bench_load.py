"""Load benchmark: wrk against uvicorn and granian serving each stack, as ratios measured in one run.

Every stack runs behind each server asked for (``--servers uvicorn,granian``, default both; one
process each, 127.0.0.1, a free port) and answers ``GET /`` with a small JSON body; every request
carries ``X-Forwarded-For/-Proto/-Host`` as a proxy would send them. The servers:

- uvicorn: ``--loop asyncio --no-access-log --no-proxy-headers --http httptools`` when httptools
  is installed, else ``--http h11``;
- granian: ``--interface asgi --workers 1 --no-ws --loop asyncio --log-level warning`` (no access
  log by default, no proxy-header handling of its own); its CPU and memory are those of the main
  process and its worker together.

The stacks:

- ``bare``: a FastAPI app;
- ``floor: static headers``: the bare app with a minimal pure-ASGI middleware appending the very
  headers ArmorHeaderMiddleware adds (captured once at startup): the cost of the header bytes alone
  (serialising, sending, parsing), which no header middleware can avoid;
- ``floor again (A/A control)``: the same floor in a server of its own, measured against the floor
  like armor+fwd: what the machine's noise alone reads as an overhead (no target; its median and
  quartiles tell how far a figure near the target can be trusted);
- ``armor+fwd [python]`` / ``[native]``: the same app with ``ArmorHeaderMiddleware`` (default rules)
  and ``ForwardedHeadersMiddleware`` (``C2C_HEADERS_ENGINE`` selects the engine);
- ``lower bound + armor`` (``--lower-bound``): ArmorHeaderMiddleware (native engine
  when installed) under a middleware that writes what ForwardedHeadersMiddleware writes for these
  requests, known in advance (no header parsed, no cache): the least any forwarded rewrite costs
  here; measured against the floor like the control, no target;
- ``decomposition`` (``--decompose``), measured against the floor like the control, no target:
  ``armor alone [native]`` (ArmorHeaderMiddleware without the forwarded middleware: the rule
  engine's share) and ``constant pair`` (the known rewrite above and the floor's fixed header list
  in one chained coroutine, no rule engine: what the pair's structure and its writes cost without
  reading or choosing anything) and ``uvicorn proxy headers`` (uvicorn's own
  ``ProxyHeadersMiddleware``, trusting 127.0.0.1, over the floor: client and scheme rewritten per
  request, no Host, nothing kept, no rule: the proxy handling a server ships, for scale; a pure
  ASGI middleware, so it runs under granian too);
- ``full stack (demo)``: ``examples.demo.app:app`` (TrustedHost, forwarded, armor, CORS, GZip,
  Prometheus instrumentation, the ``/c2c`` mount; local broadcast, no Redis);
- ``reference 0.14.0``: the armor+fwd stack built from ``c2casgiutils==0.14.0`` in ``.bench-venv``
  (``bench/setup-reference-env.sh``; uvicorn, h11 and httptools are added there at the workspace's
  versions when missing, so that the server is the same), under uvicorn only. Not with h11: the
  reference's default CSP ends with a space, which h11 refuses (a 500 for every request).

All servers start first; the memory is read after about 10k requests (a warm-up) and again after
``--total`` (100k); in between, ``--rounds`` runs of ``--duration`` seconds per stack and server,
interleaved in one shuffled order per round across both servers, so that load from other users of
the machine affects every stack alike. Per server, the table shows the median requests per second
and p99 latency over the rounds, their ratios to the bare app, the server's CPU time per request
(``/proc/<pid>/stat`` of the server's processes: not charged while another process runs, so
steadier than req/s on a shared machine), errors (non-2xx/3xx responses and socket errors over
every run) and the resident memory (``VmRSS``). Below each table, armor+fwd against the floor:
the CPU it adds per request in % of the floor's and its p99 against the bare app's, each round
paired with the same round of the floor and the bare app (median, quartiles and min-max range);
the A/A control's line, measured the same way, comes first.

Rounds run one stack at a time, and a 2-core VM's speed drifts between two runs of the same round
(the A/A control's rounds spread over tens of %). So, after the rounds, each armor+fwd stack and
control is also loaded **at the same time** as its server's floor, ``--pairs`` (8) times for
``--pair-duration`` (4) s: two wrk on the wrk core, both servers sharing the server core, each
server's CPU per request read from its own processes. Whatever slows the machine then slows both
alike; the A/A control's pairs show what is left (a percent or two between two processes).

Targets (``--check``): under every server, armor+fwd adds at most 5 % server CPU per request over
the floor (the median of the pairs; of the rounds with ``--pairs 0``) and its p99 is at most 1.5 x
the bare app's (rounds); no errors; RSS growth at most 10 %.

Usage: ``uv run --no-sync python bench/bench_load.py [--check] [--servers uvicorn,granian] [--rounds 5]
[--duration 6] [--pairs 8] [--pair-duration 4] [--lower-bound] [--decompose]``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCH_VENV = Path(os.environ.get("BENCH_REFERENCE_VENV", REPO / ".bench-venv"))
WRK_INSTALL = "apt-get install wrk"
STACK_ENV = "BENCH_LOAD_STACK"
FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}
SERVERS = ("uvicorn", "granian")
UVICORN_OPTIONS = ["--loop", "asyncio", "--no-access-log", "--no-proxy-headers"]
GRANIAN_OPTIONS = ["--interface", "asgi", "--workers", "1", "--no-ws", "--loop", "asyncio", "--log-level", "warning"]
WARMUP_REQUESTS = 10_000
TOTAL_REQUESTS = 100_000
START_TIMEOUT = 60.0

FLOOR_AGAIN = "floor again (A/A control)"
_KNOWN_UPDATES = {
    "client": (FORWARDED["X-Forwarded-For"], 0),
    "scheme": FORWARDED["X-Forwarded-Proto"],
    "server": (FORWARDED["X-Forwarded-Host"], 443),
}
_KNOWN_HOST = (b"host", FORWARDED["X-Forwarded-Host"].encode())
TARGET_CPU_OVER_FLOOR = 0.05  # armor+fwd adds at most 5 % server CPU per request over the floor
TARGET_P99 = 1.5  # armor+fwd p99 latency at most 1.5 x the bare app's
TARGET_RSS_GROWTH = 0.10  # RSS after 100k requests within 10 % of RSS after 10k


# --- the application (imported by the server: `bench_load:create_app`, as a factory) ----------------


def create_app() -> Any:
    """The app of the stack named by `BENCH_LOAD_STACK` (bare, floor, armor, reference)."""
    from fastapi import FastAPI

    stack = os.environ.get(STACK_ENV, "bare")
    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"message": "Hello from the load benchmark"}

    if stack == "bare":
        return app
    if stack == "floor":
        return _StaticHeaders(app, _armor_headers())
    if stack == "armor":
        from c2c_headers import ArmorHeaderMiddleware, ForwardedHeadersMiddleware

        app.add_middleware(ArmorHeaderMiddleware)
        app.add_middleware(ForwardedHeadersMiddleware, trusted_hosts="127.0.0.1", headers_type="x-forwarded")
        return app
    if stack == "lower-bound":
        from c2c_headers import ArmorHeaderMiddleware

        app.add_middleware(ArmorHeaderMiddleware)
        app.add_middleware(_known_rewrite())
        return app
    if stack == "armor-alone":
        from c2c_headers import ArmorHeaderMiddleware

        app.add_middleware(ArmorHeaderMiddleware)
        return app
    if stack == "constant-pair":
        app.add_middleware(_chained_static(), headers=_armor_headers())
        app.add_middleware(_known_rewrite())
        return app
    if stack == "uvicorn-proxy":
        # uvicorn's own proxy-header middleware (client and scheme from X-Forwarded-For/-Proto, no
        # Host, nothing kept) over the floor: what the server's answer to proxies costs, for scale.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        return ProxyHeadersMiddleware(_StaticHeaders(app, _armor_headers()), trusted_hosts="127.0.0.1")
    if stack == "reference":
        # Only in the bench venv, by name: the workspace's c2casgiutils (c2c-all) has the same name.
        reference: Any = importlib.import_module("c2casgiutils.headers")
        app.add_middleware(reference.ArmorHeaderMiddleware)
        app.add_middleware(reference.ForwardedHeadersMiddleware, trusted_hosts="127.0.0.1", headers_type="x-forwarded")
        return app
    raise ValueError(
        f"unknown {STACK_ENV}={stack!r}: expected bare, floor, armor, lower-bound, armor-alone, constant-pair,"
        " uvicorn-proxy or reference"
    )


class _StaticHeaders:
    """The floor: a pure-ASGI middleware appending a fixed header list (no rule, no forwarded headers)."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _known_rewrite() -> Any:
    """`_KnownRewrite`'s class: made on demand, as the reference's interpreter has no c2c_headers."""
    from c2c_headers import ORIGINAL_SCOPE_KEY, PEER_SCOPE_KEY
    from c2c_headers._chain import ChainedMiddleware

    class _KnownRewrite(ChainedMiddleware):
        """The lower bound of a forwarded rewrite: this benchmark's one answer, written without parsing.

        What `ForwardedHeadersMiddleware` writes for the benchmark's requests (client, scheme, server,
        the Host line, the original values and the peer), known in advance: no header is read but Host,
        no cache is looked up. One coroutine with the armor below, like the real pair.
        """

        def __init__(self, app: Any) -> None:
            self.app = app

        def _enter(self, scope: Any, receive: Any, send: Any) -> Any:
            client = scope.get("client")
            if client is not None and client[0] == "127.0.0.1":
                scope[PEER_SCOPE_KEY] = client
                scope[ORIGINAL_SCOPE_KEY] = {
                    "client": client,
                    "scheme": scope.get("scheme"),
                    "server": scope.get("server"),
                    "host": None,
                    "root_path": scope.get("root_path", ""),
                    "path": scope.get("path"),
                }
                scope.update(_KNOWN_UPDATES)
                scope["headers"] = [_KNOWN_HOST if line[0] == b"host" else line for line in scope["headers"]]
            return self._next(scope, receive, send)

    return _KnownRewrite


def _chained_static() -> Any:
    """`_ChainedStatic`'s class: made on demand, as the reference's interpreter has no c2c_headers."""
    from c2c_headers._chain import ChainedMiddleware

    class _ChainedStatic(ChainedMiddleware):
        """The floor's fixed header list as a chained c2c middleware: one coroutine with a rewrite above."""

        def __init__(self, app: Any, headers: list[tuple[bytes, bytes]]) -> None:
            self.app = app
            self.headers = headers

        def _enter(self, scope: Any, receive: Any, send: Any) -> Any:
            if scope["type"] != "http":
                return self._next(scope, receive, send)

            def send_with_headers(message: Any, send: Any = send, headers: Any = self.headers) -> Any:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *headers]
                return send(message)

            return self._next(scope, receive, send_with_headers)

    return _ChainedStatic


def _armor_headers() -> list[tuple[bytes, bytes]]:
    """The headers ArmorHeaderMiddleware (default rules) adds to the JSON answer, captured once."""
    from c2c_headers import ArmorHeaderMiddleware

    added: list[tuple[bytes, bytes]] = []
    json_headers = [(b"content-length", b"2"), (b"content-type", b"application/json")]

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(json_headers)})

    async def capture(message: Any) -> None:
        added.extend(header for header in message["headers"] if header not in json_headers)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "root_path": "", "headers": [(b"host", b"127.0.0.1")]}
    # Nothing in there really suspends: run the coroutine to its end without an event loop (the
    # factory is called from inside uvicorn's running loop).
    coroutine = ArmorHeaderMiddleware(inner)(scope, receive, capture)
    try:
        coroutine.send(None)
    except StopIteration:
        return added
    coroutine.close()
    raise RuntimeError("capturing the armor headers suspended")


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One wrk run."""

    requests: int
    rps: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu_us: float  # the server's CPU time (user + system) per request


@dataclass
class Variant:
    """One stack behind its own server process (uvicorn, or granian's main process and worker)."""

    name: str
    python: str
    app: str  # module:attribute
    env: dict[str, str]
    cwd: Path
    ours: bool = True  # targets apply (the reference is printed only)
    armor: bool = False  # the armor+fwd targets apply
    control: bool = False  # the floor again (A/A control), the lower bound: measured against the floor, no target
    server: str = "uvicorn"
    factory: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    runs: list[Run] = field(default_factory=list)
    warmup: list[Run] = field(default_factory=list)
    paired: list[float] = field(default_factory=list)  # CPU over the floor, run at the same time as it
    total_requests: int = 0
    rss_10k: int = 0
    rss_100k: int = 0
    requests_at_10k: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def label(self) -> str:
        return f"{self.server} {self.name}"

    def pids(self) -> list[int]:
        """The server's process and its descendants (granian: the main process and its worker)."""
        assert self.process is not None
        found = [self.process.pid]
        for pid in found:  # grows while walked: breadth first
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    found.extend(int(child) for child in (task / "children").read_text().split())
                except OSError:
                    continue  # a thread that just ended
        return found

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user + system of its processes), from /proc/<pid>/stat."""
        total = 0
        for pid in self.pids():
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """The resident memory of the server's processes together."""
        total = 0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            assert match is not None, status
            total += int(match.group(1))
        return total


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


def server_argv(variant: Variant, options: dict[str, list[str]]) -> list[str]:
    """The command line of the variant's server (without the CPU pinning)."""
    address = ["--host", "127.0.0.1", "--port", str(variant.port)]
    factory = ["--factory"] if variant.factory else []
    if variant.server == "granian":
        return [
            *[variant.python, "-m", "granian", *options["granian"], *factory],
            *["--working-dir", str(variant.cwd), *address, variant.app],
        ]
    return [
        *[variant.python, "-m", "uvicorn", variant.app, *factory],
        *["--app-dir", str(variant.cwd), *address, *options["uvicorn"]],
    ]


def start(variant: Variant, core: int | None, directory: Path, options: dict[str, list[str]]) -> None:
    variant.port = _free_port()
    variant.log = directory / f"{re.sub(r'[^a-z0-9]+', '-', variant.label)}.log"
    argv = [*_pin(core), *server_argv(variant, options)]
    with variant.log.open("wb") as log:
        variant.process = subprocess.Popen(
            argv,
            cwd=variant.cwd,
            env=variant.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # granian's worker is stopped with its main process
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if variant.process.poll() is not None:
            raise RuntimeError(f"{variant.label}: the server exited while starting:\n{variant.log.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(variant.url, headers=FORWARDED)  # noqa: S310 (http on loopback)
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                if response.status != 200:
                    raise RuntimeError(f"{variant.label}: GET / answered {response.status}")
                has_csp = response.headers.get("content-security-policy") is not None
                if has_csp != (variant.name != "bare"):
                    raise RuntimeError(f"{variant.label}: unexpected headers {dict(response.headers)}")
                return
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{variant.label}: GET / answered {error.code}: {error.read()[:500]!r}") from None
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant.label}: no answer in {START_TIMEOUT:g} s") from None
            time.sleep(0.2)


def stop(variant: Variant) -> None:
    process = variant.process
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _number(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        if default is not None:
            return default
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.group(1)


def wrk(wrk_binary: str, variant: Variant, seconds: float, core: int | None, connections: int) -> Run:
    header_args = [arg for name, value in FORWARDED.items() for arg in ("-H", f"{name}: {value}")]
    argv = [
        *_pin(core),
        wrk_binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        *header_args,
        variant.url,
    ]
    cpu_before = variant.cpu_seconds()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = variant.cpu_seconds() - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}\n{result.stdout}")
    text = result.stdout
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if p99 is None:
        raise RuntimeError(f"unexpected wrk output (no 99% line):\n{text}")
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    requests = int(_number(r"^\s+(\d+) requests in", text))
    run = Run(
        requests=requests,
        rps=float(_number(r"^Requests/sec:\s+([\d.]+)", text)),
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        non_2xx=int(_number(r"Non-2xx or 3xx responses: (\d+)", text, "0")),
        socket_errors=sum(int(value) for value in socket.groups()) if socket else 0,
        cpu_us=cpu * 1e6 / max(requests, 1),
    )
    variant.total_requests += run.requests
    return run


def wrk_pair(
    wrk_binary: str, floor: Variant, variant: Variant, seconds: float, core: int | None, connections: int
) -> float:
    """Load the floor and `variant` at the same time (their servers share one core); `variant`'s
    server CPU per request over the floor's."""
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(wrk, wrk_binary, v, seconds, core, connections) for v in (floor, variant)]
        floor_run, variant_run = (future.result() for future in runs)
    return (variant_run.cpu_us - floor_run.cpu_us) / floor_run.cpu_us


# --- setting up the variants ----------------------------------------------------------------------


def _python_has(python: str, *modules: str) -> bool:
    code = "; ".join(f"import {module}" for module in modules)
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120, check=False).returncode == 0


def _server_packages() -> list[str]:
    """The server as installed here: uvicorn, h11 and (when installed) httptools, pinned."""
    names = ["uvicorn", "h11"] + (["httptools"] if importlib.util.find_spec("httptools") else [])
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def _ensure_reference_server(python: str) -> str | None:
    """The bench venv needs the workspace's server (same versions); add it when missing."""
    wanted = _server_packages()
    names = tuple(spec.split("==")[0] for spec in wanted)
    check = (
        "import importlib.metadata as m, sys; "
        f"sys.exit(0 if [f'{{n}}=={{m.version(n)}}' for n in {names!r}] == {wanted!r} else 1)"
    )
    if subprocess.run([python, "-c", check], capture_output=True, timeout=60, check=False).returncode == 0:
        return None
    uv = shutil.which("uv")
    if uv is None:
        return "uv not found: cannot add uvicorn to the bench venv"
    print(f"adding {' '.join(wanted)} to {BENCH_VENV} (the same server as the workspace's)", flush=True)
    result = subprocess.run(
        [uv, "pip", "install", "--python", python, *wanted], capture_output=True, text=True, timeout=600, check=False
    )
    return None if result.returncode == 0 else f"could not install {wanted} in {BENCH_VENV}: {result.stderr}"


def build_variants(
    directory: Path,
    with_reference: bool,
    http: str,
    servers: list[str],
    lower_bound: bool = False,
    decompose: bool = False,
) -> tuple[list[Variant], list[str]]:
    """Every stack under every server in `servers` (the reference under uvicorn only)."""
    notes: list[str] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("C2C__", "C2C_HEADERS_ENGINE", "DEMO_"))}
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    app = "bench_load:create_app"
    ours = sys.executable
    native = _python_has(ours, "c2c_headers_native")
    if not native:
        notes.append("native engine not installed: no [native] row")
    engine = "native" if native else "python"  # of the lower bound and the armor alone

    def stack_env(stack: str, **extra: str) -> dict[str, str]:
        return {**base_env, STACK_ENV: stack, **extra}

    demo_env = {
        **base_env,
        "C2C__PROXY_HEADERS__TYPE": "x-forwarded",
        "C2C__PROMETHEUS__PORT": "0",
        "C2C__AUTH__SECRET": "bench-secret",
        "DEMO_DATABASE": str(directory / "demo.sqlite3"),
        # TrustedHost checks the forwarded host (ForwardedHeaders runs first).
        "DEMO_ALLOWED_HOSTS": f"{FORWARDED['X-Forwarded-Host']},127.0.0.1",
    }
    variants: list[Variant] = []
    for server in servers:
        common: dict[str, Any] = {"server": server, "factory": True}
        variants += [
            Variant("bare", ours, app, stack_env("bare"), HERE, **common),
            Variant("floor: static headers", ours, app, stack_env("floor"), HERE, **common),
            # The same floor in a second server: what the machine's noise alone shows as an overhead.
            Variant(FLOOR_AGAIN, ours, app, stack_env("floor"), HERE, control=True, **common),
            Variant(
                "armor+fwd [python]",
                ours,
                app,
                stack_env("armor", C2C_HEADERS_ENGINE="python"),
                HERE,
                armor=True,
                **common,
            ),
        ]
        if native:
            variants.append(
                Variant(
                    "armor+fwd [native]",
                    ours,
                    app,
                    stack_env("armor", C2C_HEADERS_ENGINE="native"),
                    HERE,
                    armor=True,
                    **common,
                )
            )
        if lower_bound:
            variants.append(
                Variant(
                    f"lower bound + armor [{engine}]",
                    ours,
                    app,
                    stack_env("lower-bound", C2C_HEADERS_ENGINE=engine),
                    HERE,
                    control=True,
                    **common,
                )
            )
        if decompose:
            variants += [
                Variant(
                    f"armor alone [{engine}]",
                    ours,
                    app,
                    stack_env("armor-alone", C2C_HEADERS_ENGINE=engine),
                    HERE,
                    control=True,
                    **common,
                ),
                Variant("constant pair", ours, app, stack_env("constant-pair"), HERE, control=True, **common),
                Variant("uvicorn proxy headers", ours, app, stack_env("uvicorn-proxy"), HERE, control=True, **common),
            ]
        variants.append(Variant("full stack (demo)", ours, "examples.demo.app:app", demo_env, REPO, server=server))
    if not with_reference:
        return variants, notes
    if "uvicorn" not in servers:
        notes.append("no reference: it runs under uvicorn only")
    elif http == "h11":
        # Its default CSP ends with "; " and h11 refuses header values with trailing whitespace:
        # every response would be a 500 (httptools lets it through).
        notes.append("no reference: its default CSP has a trailing space, which uvicorn's h11 refuses (500 on every")
        notes.append("  request); install httptools (`uv pip install httptools`) to serve every stack with httptools")
    else:
        python = str(BENCH_VENV / "bin" / "python")
        if not Path(python).exists() or not _python_has(python, "c2casgiutils.headers", "fastapi"):
            notes.append(f"no reference: {BENCH_VENV} missing or incomplete (run bench/setup-reference-env.sh)")
        elif (problem := _ensure_reference_server(python)) is not None:
            notes.append(f"no reference: {problem}")
        else:
            reference = Variant(
                "reference 0.14.0 armor+fwd", python, app, stack_env("reference"), HERE, ours=False, factory=True
            )
            variants.insert(len([v for v in variants if v.server == "uvicorn"]), reference)
    return variants, notes


@contextmanager
def servers(
    variants: list[Variant], core: int | None, directory: Path, options: dict[str, list[str]]
) -> Iterator[None]:
    try:
        for variant in variants:
            start(variant, core, directory, options)
        yield
    finally:
        for variant in variants:
            stop(variant)


# --- report ---------------------------------------------------------------------------------------


def _versions(python: str) -> str:
    code = (
        "import importlib.metadata as m, importlib.util as u, platform; "
        "print('python', platform.python_version(), *(f'{n} {m.version(n)}' for n in "
        "('uvicorn', 'h11', 'httptools', 'granian', 'fastapi', 'starlette') if u.find_spec(n)))"
    )
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip() or result.stderr.strip()


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _quartiles(values: list[float]) -> str:
    """The first and third quartiles of per-round ratios, as ``+a% to +b%``."""
    if len(values) < 2:
        return "n/a"
    first, _, third = statistics.quantiles(values, n=4)
    return f"{first:+.1%} to {third:+.1%}"


def _spread(values: list[float], fmt: str, separator: str = "-") -> str:
    return f"{min(values):{fmt}}{separator}{max(values):{fmt}}"


@dataclass
class Against:
    """armor+fwd against the floor (CPU) and the bare app (p99), round by round."""

    cpu_over_floor: list[float]  # (armor - floor) / floor, per round
    p99_ratio: list[float]  # armor / bare, per round

    @classmethod
    def of(cls, armor: Variant, floor: Variant, bare: Variant) -> Against:
        rounds = zip(armor.runs, floor.runs, bare.runs, strict=True)
        pairs = [((a.cpu_us - f.cpu_us) / f.cpu_us, a.p99_ms / b.p99_ms) for a, f, b in rounds]
        return cls([cpu for cpu, _ in pairs], [p99 for _, p99 in pairs])


def _table(variants: list[Variant], total: int) -> list[str]:
    """One server's table; return its missed errors and RSS targets."""
    bare = variants[0]
    bare_rps = _median([run.rps for run in bare.runs])
    bare_p99 = _median([run.p99_ms for run in bare.runs])
    bare_cpu = _median([run.cpu_us for run in bare.runs])
    header = (
        f"| {'stack':<28} | {'req/s':>7} | {'x bare':>6} | {'req/s range':>13} | {'p99 ms':>7} | {'x bare':>6} |"
        f" {'CPU µs/req':>10} | {'bare/this':>9} | {'errors':>6} | {'RSS 10k MiB':>11}"
        f" | {f'RSS {total // 1000}k MiB':>12} | {'growth':>6} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    missed: list[str] = []
    for variant in variants:
        rps = _median([run.rps for run in variant.runs])
        p99 = _median([run.p99_ms for run in variant.runs])
        cpu = _median([run.cpu_us for run in variant.runs])
        errors = sum(run.non_2xx + run.socket_errors for run in variant.warmup + variant.runs)
        growth = (variant.rss_100k - variant.rss_10k) / variant.rss_10k
        spread = _spread([r.rps for r in variant.runs], ".0f")
        print(
            f"| {variant.name:<28} | {rps:>7.0f} | {rps / bare_rps:>6.2f} | {spread:>13} | {p99:>7.2f} |"
            f" {p99 / bare_p99:>6.2f} | {cpu:>10.0f} | {bare_cpu / cpu:>9.2f} | {errors:>6} |"
            f" {variant.rss_10k / 1024:>11.1f} | {variant.rss_100k / 1024:>12.1f} | {growth:>+6.1%} |"
        )
        if not variant.ours:
            continue
        if errors:
            missed.append(f"{variant.label}: {errors} errors")
        if growth > TARGET_RSS_GROWTH:
            missed.append(
                f"{variant.label}: RSS grew {growth:+.1%} from 10k to {total // 1000}k requests"
                f" (> {TARGET_RSS_GROWTH:.0%})"
            )
    return missed


def report(variants: list[Variant], total: int, pair_seconds: float = 0.0) -> list[str]:
    """Print one table per server, then armor+fwd against the floor; return the missed targets."""
    missed: list[str] = []
    for server in dict.fromkeys(variant.server for variant in variants):
        mine = [variant for variant in variants if variant.server == server]
        print(f"{server}:")
        print()
        missed += _table(mine, total)
        bare, floor = mine[0], mine[1]
        print()
        for armor in (variant for variant in mine if variant.armor or variant.control):
            against = Against.of(armor, floor, bare)
            cpu, p99 = _median(against.cpu_over_floor), _median(against.p99_ratio)
            cpu_rounds, p99_rounds = (
                _spread(against.cpu_over_floor, "+.1%", " to "),
                _spread(against.p99_ratio, ".2f", " to "),
            )
            quartiles = _quartiles(against.cpu_over_floor)
            print(
                f"{server} {armor.name}: CPU over the floor {cpu:+.1%} (quartiles {quartiles}, rounds {cpu_rounds}),"
                f" p99 {p99:.2f} x bare (rounds {p99_rounds})"
            )
            if armor.paired:
                cpu = _median(armor.paired)
                print(
                    f"{server} {armor.name}, loaded at the same time as the floor: CPU over the floor {cpu:+.1%}"
                    f" (quartiles {_quartiles(armor.paired)}, {len(armor.paired)} pairs of {pair_seconds:g} s"
                    f" {_spread(armor.paired, '+.1%', ' to ')})"
                )
            if armor.control:
                continue
            if cpu > TARGET_CPU_OVER_FLOOR:
                missed.append(
                    f"{armor.label}: {cpu:+.1%} server CPU per request over the floor (> +{TARGET_CPU_OVER_FLOOR:.0%})"
                )
            if p99 > TARGET_P99:
                missed.append(f"{armor.label}: p99 {p99:.2f} x the bare app's (> {TARGET_P99:g})")
        print()
    print(
        f"targets: under every server, armor+fwd adds <= {TARGET_CPU_OVER_FLOOR:.0%} server CPU per request over"
        f" the floor (the median of the pairs loaded at the same time as the floor, else of the rounds) and its"
        f" p99 <= {TARGET_P99:g} x bare (median of the per-round ratios); no error; RSS growth"
        f" from 10k to {total // 1000}k requests <= {TARGET_RSS_GROWTH:.0%} (our stacks; the reference is shown only)"
    )
    for line in missed:
        print(f"MISSED: {line}")
    if not missed:
        print("all targets met")
    return missed


def _servers_option(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(SERVERS)}, got {text!r}")
    return list(dict.fromkeys(names))


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--servers", type=_servers_option, default=list(SERVERS), help="default uvicorn,granian")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured run (default 6)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measured runs per stack (default 5)")
    parser.add_argument(
        "--pairs", type=int, default=8, help="runs of each armor+fwd stack at the same time as the floor (default 8)"
    )
    parser.add_argument("--pair-duration", type=float, default=4.0, help="seconds per paired run (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--no-reference", action="store_true", help="skip the c2casgiutils 0.14.0 stack")
    parser.add_argument(
        "--lower-bound", action="store_true", help="add the known-rewrite stack (no parsing, no cache) + armor"
    )
    parser.add_argument(
        "--decompose",
        action="store_true",
        help="add the armor alone, the constant pair (known rewrite + fixed headers, one coroutine) and"
        " uvicorn's ProxyHeadersMiddleware over the floor",
    )
    parser.add_argument("--total", type=int, default=TOTAL_REQUESTS, help="requests before the second RSS (100000)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the shuffled order")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def measure(variants: list[Variant], options: argparse.Namespace, wrk_binary: str, wrk_core: int | None) -> None:
    """Warm-up and first RSS, the interleaved rounds, the top-up and the second RSS."""
    seed = options.seed
    shuffle = random.Random(seed)
    # Warm-up to about 10k requests each (short runs), then the first RSS.
    for variant in variants:
        while variant.total_requests < WARMUP_REQUESTS:
            variant.warmup.append(wrk(wrk_binary, variant, 2, wrk_core, options.connections))
        variant.requests_at_10k = variant.total_requests
        variant.rss_10k = variant.rss_kib()
    for round_number in range(options.rounds):
        order = list(variants)  # every stack of every server, in one shuffled order
        shuffle.shuffle(order)
        for variant in order:
            variant.runs.append(wrk(wrk_binary, variant, options.duration, wrk_core, options.connections))
        print(f"round {round_number + 1}/{options.rounds} done", flush=True)
    # Each armor+fwd stack and control loaded at the same time as its server's floor, both servers
    # on one core: the machine's ups and downs fall on both alike.
    for server in dict.fromkeys(variant.server for variant in variants):
        mine = [variant for variant in variants if variant.server == server]
        floor, measured = mine[1], [variant for variant in mine if variant.armor or variant.control]
        for _ in range(options.pairs):
            for variant in shuffle.sample(measured, len(measured)):
                cpu = wrk_pair(wrk_binary, floor, variant, options.pair_duration, wrk_core, options.connections)
                variant.paired.append(cpu)
        if options.pairs:
            print(f"{server}: {options.pairs} pairs with the floor done", flush=True)
    # Top up to --total requests each, then the second RSS.
    for variant in variants:
        while variant.total_requests < options.total:
            missing = options.total - variant.total_requests
            seconds = min(30.0, max(1.0, missing / max(variant.runs[-1].rps, 1.0) + 0.5))
            variant.warmup.append(wrk(wrk_binary, variant, seconds, wrk_core, options.connections))
        variant.rss_100k = variant.rss_kib()


def main() -> int:
    options = parse_options()
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        print(f"wrk is missing: install it with `{WRK_INSTALL}` (as root)", file=sys.stderr)
        return 2
    cores = sorted(os.sched_getaffinity(0))
    pinned = shutil.which("taskset") is not None and len(cores) >= 2
    server_core, wrk_core = (cores[0], cores[1]) if pinned else (None, None)
    if options.seed is None:
        options.seed = random.randrange(1 << 30)
    started = datetime.datetime.now(datetime.UTC)
    # httptools when installed here (uvicorn[standard], as in production), else the pure-Python h11.
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    server_options = {"uvicorn": [*UVICORN_OPTIONS, "--http", http], "granian": GRANIAN_OPTIONS}
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench-load-") as temp:
        variants, notes = build_variants(
            Path(temp), not options.no_reference, http, options.servers, options.lower_bound, options.decompose
        )
        print(f"stacks: {', '.join(variant.label for variant in variants)}", flush=True)
        with servers(variants, server_core, Path(temp), server_options):
            measure(variants, options, wrk_binary, wrk_core)

    print()
    print(
        f"conditions: {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores "
        f"(load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after), "
        + (f"server pinned to core {server_core}, wrk to core {wrk_core}" if pinned else "no CPU pinning")
    )
    for server in options.servers:
        print(f"server: {server} {' '.join(server_options[server])}, one process (granian: one worker)")
    print(f"versions: {_versions(sys.executable)}")
    if any(not variant.ours for variant in variants):
        print(f"reference server: {_versions(str(BENCH_VENV / 'bin' / 'python'))}")
    print(
        f"wrk -t1 -c{options.connections} --latency, {options.rounds} x {options.duration:g} s per stack and server "
        f"(interleaved across servers, shuffle seed {options.seed}), X-Forwarded-For/-Proto/-Host on every request; "
        f"RSS after {min(v.requests_at_10k for v in variants)}+ and {options.total}+ requests"
    )
    if options.pairs:
        print(
            f"then {options.pairs} x {options.pair_duration:g} s per armor+fwd stack and control, loaded at the same"
            " time as its server's floor (two wrk, both servers on the server core)"
        )
    for note in notes:
        print(f"note: {note}")
    print()
    missed = report(variants, options.total, options.pair_duration)
    return 1 if missed and options.check else 0


if __name__ == "__main__":
    sys.exit(main())
