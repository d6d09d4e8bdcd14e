"""A real nginx, configured by the test, in a directory of its own (nothing from /etc/nginx).

The tests write only what they test: the inside of the `http { ... }` block (upstreams, servers,
maps). `Nginx` adds the rest of the configuration (no daemon, its pid, logs and temporary files
under its prefix, `user root;` when run as root, since workers would otherwise switch to `nobody`,
which cannot enter pytest's 0700 temporary directories), starts nginx in a process group of its
own (no worker outlives the teardown) and waits until every given port listens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from c2c_testing._binaries import MissingBinaryError
from c2c_testing._net import wait_for_port
from c2c_testing._process import ServerError

START_TIMEOUT: Final = 60.0  # "does not hang": nginx starts in milliseconds, but CI machines are shared

_CONFIG: Final = """\
# Written by c2c_testing.Nginx: nothing from /etc/nginx, every path in {prefix}.
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections {connections}; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
{http}
}}
"""


def nginx_binary() -> str:
    """The nginx executable (PATH, then Debian's /usr/sbin); `MissingBinaryError` says how to install it."""
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if found is None:
        raise MissingBinaryError("nginx", "searched PATH, /usr/sbin and /usr/local/sbin")
    return found


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


class Nginx:
    """One nginx process serving the `http` block `http` from `prefix` (created if needed).

    `ports` are the TCP ports on 127.0.0.1 its servers listen on: `start()` returns once each one
    accepts connections (unix sockets are not waited for). Use it as a context manager, or call
    `start()` and `stop()`.
    """

    def __init__(self, prefix: Path, http: str, ports: Sequence[int] = (), *, connections: int = 256) -> None:
        self.prefix = prefix
        self.ports = tuple(ports)
        self.config_path = prefix / "nginx.conf"
        self.error_log = prefix / "error.log"
        self.access_log = prefix / "access.log"
        self.config = _CONFIG.format(
            prefix=prefix,
            user="user root;" if os.geteuid() == 0 else "",
            connections=connections,
            http=http,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Write the configuration, start nginx and wait for its ports; `ServerError` with its logs otherwise."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config, encoding="utf-8")
        stderr = self.prefix / "stderr.log"
        with stderr.open("wb") as log:
            self.process = subprocess.Popen(
                [nginx_binary(), "-p", str(self.prefix), "-c", str(self.config_path), "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                if self.process.poll() is not None:
                    message = f"nginx exited with status {self.process.returncode} while starting"
                    raise ServerError(f"{message}\n{_tail(stderr)}\n{_tail(self.error_log)}")
                try:
                    wait_for_port("127.0.0.1", port, timeout=0.5)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise ServerError(
                            f"nginx did not listen on {port} in {timeout:g} s\n{_tail(self.error_log)}"
                        ) from None
        return self

    def stop(self) -> None:
        """Stop nginx and its workers (its whole process group); idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers that outlived the master
            os.killpg(process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the error log, for assertion messages."""
        return _tail(self.error_log, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
