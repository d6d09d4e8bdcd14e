"""The cookiecutter scaffold: rendered with the real cookiecutter, installed against this workspace, run.

Once per module: `cookiecutter <checkout> --directory scaffold --no-input project_slug=...` into a
temporary directory, then a fresh virtual environment (`uv venv`) with the workspace's pure
packages installed from their sources and the generated project with its `test` group. Then:
the generated files are sane (Dockerfile instructions, compose file, logging configuration, the
version range of c2c-all), the generated project's own tests pass in that environment, it is
ruff- and mypy-clean in its own configuration, and it serves: uvicorn, started as the Dockerfile's
CMD says with the image's ENV (on a free loopback port), answers `/c2c/health_checks`,
`python -m c2c_health URL` exits 0, a proxy on 127.0.0.1 gets its X-Request-ID back and its
client address and scheme believed, and with a real Redis stopped the Redis check fails while
readiness and liveness do not (Redis is shared by every replica).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from c2c_testing import RedisServer, free_port, stop_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SLUG = "acme_probe_service"
ENV_PREFIX = SLUG.upper() + "__"
# The pure members c2c-all needs (the native engine is optional and built by the release check).
WORKSPACE_PACKAGES = ["c2c-config", "c2c-headers", "c2c-health", "c2c-broadcast", "c2c-auth", "c2c-all"]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: none of the caller's toolkit settings or virtualenv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("C2C__", ENV_PREFIX, "UV_PROJECT", "PYTHON", "VIRTUAL_ENV", "SENTRY_"))
    }
    env.update(extra)
    return env


def _run(command: list[str], cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def _check(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{shlex.join(str(a) for a in result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@dataclass(frozen=True)
class Project:
    """The rendered project and the virtual environment it is installed in."""

    path: Path
    python: Path
    generated: str
    """What cookiecutter (its post-generation hook) printed."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the scaffold's environment"
    base = tmp_path_factory.mktemp("scaffold")
    # Cookiecutter keeps its replays and clones under the home directory unless told otherwise.
    config = base / "cookiecutter.yaml"
    config.write_text(
        yaml.safe_dump({"cookiecutters_dir": str(base / "cookiecutters"), "replay_dir": str(base / "replay")})
    )
    output = base / "out"
    generated = _check(
        _run(
            [sys.executable, "-m", "cookiecutter", str(ROOT), "--directory", "scaffold", "--no-input"]
            + ["--output-dir", str(output), f"project_slug={SLUG}", "project_description=Probes the scaffold"],
            cwd=base,
            timeout=120,
            COOKIECUTTER_CONFIG=str(config),
        )
    )
    path = output / SLUG
    venv = base / "venv"
    _check(_run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=base, timeout=120))
    python = venv / "bin" / "python"
    editables = [arg for name in WORKSPACE_PACKAGES for arg in ("-e", str(ROOT / "packages" / name))]
    _check(
        _run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *editables, "-e", str(path)]
            + ["--group", f"{path / 'pyproject.toml'}:test"],
            cwd=base,
            timeout=600,
        )
    )
    return Project(path, python, generated)


# --- the generated files ----------------------------------------------------------------------------


def test_files(project: Project) -> None:
    names = {str(p.relative_to(project.path)) for p in project.path.rglob("*") if p.is_file()}
    expected = {
        ".dockerignore",
        ".github/workflows/ci.yaml",
        ".gitignore",
        "Dockerfile",
        "README.md",
        "docker-compose.yaml",
        "k8s/deployment.yaml",
        "logging.yaml",
        "pyproject.toml",
        f"{SLUG}/__init__.py",
        f"{SLUG}/api.py",
        f"{SLUG}/main.py",
        f"{SLUG}/py.typed",
        f"{SLUG}/settings.py",
        "tests/conftest.py",
        "tests/test_main.py",
        "tests/test_settings.py",
        "wheels/README.md",
    }
    assert expected <= names, expected - names
    for name in expected:
        text = (project.path / name).read_text()
        assert "cookiecutter" not in text, f"{name} holds an unrendered template variable"
        assert not re.search(r"\{\{|\{%", text), f"{name} holds template syntax"
    assert (
        ENV_PREFIX + "ALLOWED_HOSTS"
        in (project.path / f"{SLUG}/settings.py").read_text() + (project.path / "README.md").read_text()
    )


def _dotenv(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_env_file_and_next_steps(project: Project) -> None:
    """The hook writes the project's own secrets to .env (owner only) and prints how to build the wheels."""
    env_file = project.path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = _dotenv(env_file)
    assert set(values) == {"C2C__AUTH__SECRET", "C2C__BROADCAST__SECRET", "C2C__AUTH__SECRET_IN_QUERY"}
    assert len(values["C2C__AUTH__SECRET"]) >= 32 and len(values["C2C__BROADCAST__SECRET"]) >= 32
    assert values["C2C__AUTH__SECRET"] != values["C2C__BROADCAST__SECRET"]
    assert values["C2C__AUTH__SECRET_IN_QUERY"] == "false"
    assert values["C2C__AUTH__SECRET"] not in project.generated  # secrets are not printed
    # No wheels yet: the hook prints the loop that builds them, from this checkout, before `uv sync`.
    assert f'uv build --directory "{ROOT}" --package "$package" --wheel --out-dir "$PWD/wheels"' in project.generated
    assert f"cd {project.path}" in project.generated


def test_readme_commands(project: Project) -> None:
    """The wheels are built before `uv sync`; the dev servers get `.env` and uvicorn `--lifespan on`."""
    readme = (project.path / "README.md").read_text()
    assert readme.index("uv build --directory") < readme.index("\nuv sync\n")  # the commands, in order
    uvicorn = readme[readme.index("uv run --env-file .env uvicorn") :].split("```")[0]
    assert "--lifespan on" in uvicorn
    assert "--no-proxy-headers" in uvicorn  # as in the image: the application reads the proxy headers
    assert "uv run --env-file .env --with granian granian" in readme
    wheels = (project.path / "wheels" / "README.md").read_text()
    assert wheels.index("uv build") < wheels.index("uv lock")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ('project_description=Billing "quoted" service', "without double quotes or backslashes"),
        ("project_description=a\\b", "without double quotes or backslashes"),
        ("project_slug=My-Project", "is not a valid package name"),
    ],
)
def test_answers_that_would_break_the_project_are_refused(tmp_path: Path, answer: str, message: str) -> None:
    """A description is written into pyproject.toml and Python strings as it is: a `"` broke both."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(
        yaml.safe_dump({"cookiecutters_dir": str(tmp_path / "cookiecutters"), "replay_dir": str(tmp_path / "replay")})
    )
    result = _run(
        [sys.executable, "-m", "cookiecutter", str(ROOT), "--directory", "scaffold", "--no-input"]
        + ["--output-dir", str(tmp_path / "out"), answer],
        cwd=tmp_path,
        timeout=120,
        COOKIECUTTER_CONFIG=str(config),
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pyproject(project: Project) -> None:
    pyproject = tomllib.loads((project.path / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == SLUG.replace("_", "-")
    assert pyproject["project"]["description"] == "Probes the scaffold"
    requirements = {Requirement(r).name: Requirement(r) for r in pyproject["project"]["dependencies"]}
    c2c_all = requirements["c2c-all"]
    assert "redis" in c2c_all.extras
    workspace_version = tomllib.loads((ROOT / "packages/c2c-all/pyproject.toml").read_text())["project"]["version"]
    assert c2c_all.specifier.contains(workspace_version), (c2c_all, workspace_version)
    assert {Requirement(r).name for r in pyproject["dependency-groups"]["test"]} >= {"pytest", "httpx"}
    assert pyproject["tool"]["pytest"]["ini_options"]["filterwarnings"] == ["error"]


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword, arguments.strip()))
    assert not pending, "the Dockerfile ends with a line continuation"
    return instructions


def test_dockerfile(project: Project) -> None:
    instructions = _dockerfile_instructions((project.path / "Dockerfile").read_text())
    keywords = [keyword for keyword, _ in instructions]
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "HEALTHCHECK", "CMD", "ARG", "LABEL"}
    assert set(keywords) <= known, set(keywords) - known
    assert all(keyword.isupper() for keyword in keywords)
    assert keywords[0] == "FROM"
    assert keywords.count("CMD") == 1 and keywords[-1] == "CMD"
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert keywords.index("USER") < keywords.index("CMD")
    (healthcheck,) = [arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK"]
    probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert probe[:3] == ["python", "-m", "c2c_health"]
    assert probe[-1] == "http://127.0.0.1:8080/c2c/livez"
    # Exec form, no shell: uvicorn is PID 1 and gets the signals.
    command = json.loads(instructions[-1][1])
    assert command[:2] == ["uvicorn", f"{SLUG}.main:app"]
    for flag in ("--host=0.0.0.0", "--port=8080", "--lifespan=on", "--log-config=/app/logging.yaml"):
        assert flag in command
    # One parser of the proxy headers, ForwardedHeadersMiddleware: uvicorn's own is off.
    assert "--no-proxy-headers" in command
    assert not [word for word in command if word.startswith(("--proxy-headers", "--forwarded-allow-ips"))]
    env = _image_environment(project)
    assert env["C2C__PROXY_HEADERS__TYPE"] == "x-forwarded"
    assert env["C2C__PROXY_HEADERS__TRUSTED_HOSTS"] == "127.0.0.1", "trust no proxy but loopback by default"
    assert "FORWARDED_ALLOW_IPS" not in env
    assert env["C2C__AUTH__SECRET_IN_QUERY"] == "false", "the secret is never taken from a URL (C2C-W004)"
    assert not [name for name in env if "SECRET" in name and name != "C2C__AUTH__SECRET_IN_QUERY"]


def _image_environment(project: Project) -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set."""
    instructions = _dockerfile_instructions((project.path / "Dockerfile").read_text())
    words = [word for keyword, arguments in instructions if keyword == "ENV" for word in shlex.split(arguments)]
    return dict(word.split("=", 1) for word in words)


# What differs between the image and a test run: the listening address and the logging file's path.
_IMAGE_TO_LOCAL = {
    "--host=0.0.0.0": "--host=127.0.0.1",
    "--port=8080": "--port={port}",
    "--log-config=/app/logging.yaml": "--log-config=logging.yaml",
}


def _image_command(project: Project, port: int) -> list[str]:
    """The Dockerfile's CMD as it runs here: on 127.0.0.1:`port`, with the project's logging.yaml.

    Only those three values change (each must be in the CMD); every other word is the image's, so
    the servers of these tests follow the Dockerfile (run with the image's ENV, see `Server`).
    """
    instructions = _dockerfile_instructions((project.path / "Dockerfile").read_text())
    (cmd,) = [arguments for keyword, arguments in instructions if keyword == "CMD"]
    command: list[str] = json.loads(cmd)
    for image_value, local_value in _IMAGE_TO_LOCAL.items():
        assert sum(word.count(image_value) for word in command) == 1, f"{image_value} not once in the CMD"
        command = [word.replace(image_value, local_value.format(port=port)) for word in command]
    return command


def test_compose_and_logging(project: Project) -> None:
    compose = yaml.safe_load((project.path / "docker-compose.yaml").read_text())
    assert set(compose["services"]) == {"app", "redis"}
    app = compose["services"]["app"]
    assert app["environment"]["C2C__REDIS__URL"] == "redis://redis:6379/0"
    assert all(port.startswith("127.0.0.1:") for port in app["ports"]), "published on loopback only"
    assert "*" not in app["environment"][ENV_PREFIX + "ALLOWED_HOSTS"]
    assert not [name for name in app["environment"] if "SECRET" in name], "secrets belong in .env, not here"
    assert ".env" in (project.path / ".gitignore").read_text().split()
    assert ".env" in (project.path / ".dockerignore").read_text().split()
    logging_config = yaml.safe_load((project.path / "logging.yaml").read_text())
    assert logging_config["version"] == 1
    assert SLUG in logging_config["loggers"]
    # The configuration is valid for logging.config.dictConfig (in the project's interpreter).
    code = f"import logging.config, yaml; logging.config.dictConfig(yaml.safe_load(open({'logging.yaml'!r})))"
    _check(_run([str(project.python), "-I", "-c", code], cwd=project.path, timeout=60))


# --- the generated project's own checks ---------------------------------------------------------------


def test_generated_tests_pass(project: Project) -> None:
    result = _run([str(project.python), "-m", "pytest", "-p", "no:cacheprovider"], cwd=project.path, timeout=300)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"generated project's tests: {summary}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed\b", summary) and "failed" not in summary and "error" not in summary


def test_generated_lint(project: Project, tmp_path: Path) -> None:
    for command in (["ruff", "format", "--check", "."], ["ruff", "check", "--no-cache", "."]):
        _check(_run([sys.executable, "-m", *command], cwd=project.path, timeout=120))
    _check(
        _run(
            [sys.executable, "-m", "mypy", "--python-executable", str(project.python), "--cache-dir", str(tmp_path)],
            cwd=project.path,
            timeout=300,
        )
    )


# --- served by uvicorn ----------------------------------------------------------------------------------


class Server:
    """The generated application started as the Dockerfile starts it: its CMD and ENV, on loopback here.

    `env` comes on top of the image's ENV; the project's virtual environment is first on PATH
    (where the CMD finds `uvicorn`).
    """

    def __init__(self, project: Project, log_path: Path, prefix: str = "/", **env: str) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        environment = {
            **_image_environment(project),
            "PATH": f"{project.python.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "C2C__PROMETHEUS__PORT": "0",  # no metrics server on all interfaces
            **env,
        }
        self.process = subprocess.Popen(
            _image_command(project, self.port),
            cwd=project.path,
            env=_clean_env(**environment),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout=60)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"uvicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.get(f"{self.url}{self.prefix}c2c/health_checks?tags=liveness", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return
        raise AssertionError(f"uvicorn did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def stop(self) -> None:
        stop_process(self.process, timeout=15)
        self._log.close()


def _probe(project: Project, url: str) -> subprocess.CompletedProcess[str]:
    return _run([str(project.python), "-m", "c2c_health", "--timeout=10", url], cwd=project.path, timeout=60)


@pytest.fixture
def server(project: Project, tmp_path: Path) -> Iterator[Server]:
    running = Server(project, tmp_path / "uvicorn.log")
    yield running
    running.stop()


def test_serves(project: Project, server: Server) -> None:
    report = server.get("/c2c/health_checks")
    assert report.status_code == 200, report.text
    assert [entity["name"] for entity in report.json()["entities"]] == ["Alive"]  # no Redis configured
    assert server.get("/c2c/").status_code == 200
    hello = server.get("/api/hello?name=uvicorn")
    assert hello.json() == {"message": "Hello, uvicorn!"}
    assert "default-src" in hello.headers["content-security-policy"]
    liveness = _probe(project, server.url + "/c2c/livez")
    assert liveness.returncode == 0, liveness.stderr
    assert "healthy" in liveness.stdout
    assert [entity["name"] for entity in server.get("/c2c/livez").json()["entities"]] == ["Alive"]
    assert _probe(project, server.url + "/c2c/health_checks").returncode == 0
    # The log configuration of the Dockerfile is in effect (its format, on stderr).
    assert re.search(r"INFO\s+uvicorn\.error: Application startup complete", server.log()), server.log()


def test_a_redis_outage_fails_its_check_not_readiness(
    project: Project, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis is shared by every replica: in readiness, its failover would empty the Service at once."""
    running = Server(project, tmp_path / "uvicorn.log", C2C__REDIS__URL=redis_server.url)
    try:
        readiness = running.get("/c2c/readyz")
        assert readiness.status_code == 200, readiness.text
        assert [entity["name"] for entity in readiness.json()["entities"]] == ["Alive"]
        assert running.get("/c2c/health_checks?tags=redis").status_code == 200
        redis_server.stop()
        assert running.get("/c2c/health_checks?tags=redis").status_code >= 500
        assert running.get("/c2c/readyz").status_code == 200
        assert running.get("/c2c/livez").status_code == 200
        assert _probe(project, running.url + "/c2c/health_checks?tags=readiness").returncode == 0
        refused = _probe(project, running.url + "/c2c/health_checks?tags=redis")
        assert refused.returncode == 1 and "unhealthy" in refused.stderr
    finally:
        running.stop()


def test_route_prefix(project: Project, tmp_path: Path) -> None:
    running = Server(project, tmp_path / "uvicorn.log", prefix="/svc/", C2C__ROUTE_PREFIX="/svc/")
    try:
        assert running.get("/svc/c2c/health_checks").status_code == 200
        assert running.get("/svc/api/hello").json() == {"message": "Hello, world!"}
        assert running.get("/svc/").json()["health"] == "/svc/c2c/health_checks"
        # Swagger UI moved with the prefix, and its CSP (the CDN it loads from) with it.
        docs = running.get("/svc/docs")
        assert docs.status_code == 200
        assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/" in docs.headers["content-security-policy"]
        api_csp = running.get("/svc/api/hello").headers["content-security-policy"]
        assert "cdn.jsdelivr.net" not in api_csp
        assert running.get("/c2c/health_checks").status_code == 404
        assert running.get("/api/hello").status_code == 404
    finally:
        running.stop()


def test_behind_a_proxy(project: Project, tmp_path: Path) -> None:
    """The proxy (here: this test, from 127.0.0.1) passes the public host in X-Forwarded-Host.

    The image's settings (C2C__PROXY_HEADERS__TYPE=x-forwarded, TRUSTED_HOSTS=127.0.0.1) suffice.
    """
    env = {ENV_PREFIX + "ALLOWED_HOSTS": "public.example"}
    forwarded = {"Host": "backend:8080", "X-Forwarded-Host": "public.example", "X-Forwarded-Proto": "https"}
    running = Server(project, tmp_path / "uvicorn.log", **env)
    try:
        response = running.get("/api/hello", headers=forwarded)
        assert response.status_code == 200, response.text
        assert "max-age=" in response.headers["strict-transport-security"]  # https, public host
        index = running.get("/", headers=forwarded).json()
        assert index["health"] == "/c2c/health_checks"
        # Without the forwarded host, the backend name is not an allowed host; the refusal is armored.
        refused = running.get("/api/hello", headers={"Host": "backend:8080"})
        assert refused.status_code == 400
        assert refused.headers["x-content-type-options"] == "nosniff"
    finally:
        running.stop()
    # C2C__PROXY_HEADERS__TRUST_HOST=false: the scheme is still believed, the forwarded host is not.
    running = Server(project, tmp_path / "uvicorn-no-host.log", C2C__PROXY_HEADERS__TRUST_HOST="false", **env)
    try:
        assert running.get("/api/hello", headers=forwarded).status_code == 400  # backend:8080 is not allowed
        own_host = {**forwarded, "Host": "public.example", "X-Forwarded-Host": "evil.example"}
        response = running.get("/api/hello", headers=own_host)
        assert response.status_code == 200, response.text
        assert "max-age=" in response.headers["strict-transport-security"]  # X-Forwarded-Proto still applies
    finally:
        running.stop()


def test_a_proxy_is_recognised_as_the_image_runs(project: Project, tmp_path: Path) -> None:
    """Started as the Dockerfile says (CMD and ENV), the application alone reads the proxy headers.

    A proxy on 127.0.0.1 (here: this test) forwards a client, https and its own X-Request-ID:
    ForwardedHeadersMiddleware takes the client and the scheme, and RequestIdMiddleware, judging
    the same real peer, keeps the id. Under uvicorn's own --proxy-headers, the client address was
    replaced before the application saw the proxy: the id was generated anew.
    """
    secret = "the-secret-of-this-test-" + "0" * 32
    proxied = {
        "X-Forwarded-For": "203.0.113.5",
        "X-Forwarded-Proto": "https",
        "X-Request-ID": "from-proxy-123",
        "X-API-Key": secret,  # the /c2c/headers tool shows what the application sees
    }
    running = Server(project, tmp_path / "uvicorn.log", C2C__AUTH__SECRET=secret)
    try:
        response = running.get("/c2c/headers/", headers=proxied)
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "from-proxy-123", running.log()
        seen = response.json()
        assert seen["scope"]["client"][0] == "203.0.113.5"
        assert seen["scope"]["scheme"] == "https"
        assert seen["client_info"]["base_url_str"].startswith("https://")
        assert "max-age=" in response.headers["strict-transport-security"]  # https: HSTS
        # The access log names the client and carries the proxy's id.
        access = [line for line in running.log().splitlines() if '"GET /c2c/headers/ HTTP/1.1" 200' in line]
        assert len(access) == 1 and "203.0.113.5" in access[0] and "[from-proxy-123]" in access[0], access
    finally:
        running.stop()
    # A peer outside C2C__PROXY_HEADERS__TRUSTED_HOSTS (networks and addresses, comma-separated):
    # its forwarded headers and its id are the client's own, believed by neither middleware.
    untrusted = {"C2C__AUTH__SECRET": secret, "C2C__PROXY_HEADERS__TRUSTED_HOSTS": "10.0.0.0/8,192.0.2.7"}
    running = Server(project, tmp_path / "uvicorn-untrusted.log", **untrusted)
    try:
        response = running.get("/c2c/headers/", headers=proxied)
        assert response.status_code == 200, response.text
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), response.headers["x-request-id"]
        seen = response.json()
        assert seen["scope"]["client"][0] == "127.0.0.1"
        assert seen["scope"]["scheme"] == "http"
    finally:
        running.stop()


# --- the deploy check ------------------------------------------------------------------------------------


def test_deploy_check(project: Project) -> None:
    """The scaffold's settings pass the deploy check its CI runs; a broken setting fails it."""
    workflow = yaml.safe_load((project.path / ".github/workflows/ci.yaml").read_text())
    steps = {step.get("name"): step for step in workflow["jobs"]["ci"]["steps"]}
    command = steps["Deploy check"]["run"]
    assert command == f"uv run python -m c2casgiutils check {SLUG}.main:app"
    check = [str(project.python), "-m", "c2casgiutils", "check", f"{SLUG}.main:app", "--json"]
    result = _run(check, cwd=project.path, timeout=120, **steps["Deploy check"]["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    # Without authentication configured (the CI's environment), the /c2c pages are locked: a warning.
    assert [finding["id"] for finding in json.loads(result.stdout)] == ["C2C-W001"]
    broken = _run(check, cwd=project.path, timeout=120, C2C__PROMETHEUS__PORT="0", C2C__REDIS__DB="x")
    assert broken.returncode == 1
    assert "C2C__REDIS__DB" in broken.stdout


def test_deploy_check_at_warning_level_with_compose_environment(project: Project, redis_server: RedisServer) -> None:
    """As the docs recommend (`--fail-level warning`), with the image's ENV, the compose environment and .env."""
    compose = yaml.safe_load((project.path / "docker-compose.yaml").read_text())
    env = {**_image_environment(project), **_dotenv(project.path / ".env")}
    env.update({name: str(value) for name, value in compose["services"]["app"]["environment"].items()})
    assert env["C2C__REDIS__URL"] == "redis://redis:6379/0"
    env["C2C__REDIS__URL"] = redis_server.url  # the compose service's Redis, here
    env["C2C__PROMETHEUS__PORT"] = "0"
    check = [str(project.python), "-m", "c2casgiutils", "check", f"{SLUG}.main:app", "--json"]
    result = _run([*check, "--fail-level", "warning"], cwd=project.path, timeout=120, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
    # Without the scaffold's settings the same environment fails: what they are there for.
    for name in ("C2C__AUTH__SECRET_IN_QUERY", "C2C__BROADCAST__SECRET", "C2C__REDIS__BROADCAST_PREFIX"):
        del env[name]
    bare = _run([*check, "--fail-level", "warning"], cwd=project.path, timeout=120, **env)
    assert bare.returncode == 1
    assert sorted(finding["id"] for finding in json.loads(bare.stdout)) == ["C2C-I003", "C2C-W004", "C2C-W005"]


def test_kubernetes_example(project: Project, server: Server, redis_server: RedisServer) -> None:
    """k8s/deployment.yaml: its probes answer on the scaffold's paths and port, its timing holds, its check passes."""
    deployment = yaml.safe_load((project.path / "k8s/deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (app,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}
    instructions = _dockerfile_instructions((project.path / "Dockerfile").read_text())
    assert [arguments for keyword, arguments in instructions if keyword == "EXPOSE"] == [str(ports["http"])]
    assert ports["metrics"] == 9000  # C2C__PROMETHEUS__PORT's default
    env = {variable["name"]: variable["value"] for variable in app["env"]}
    allowed = env[ENV_PREFIX + "ALLOWED_HOSTS"].split(",")
    # The ingress controller's addresses or the pod network, never '*' (the image trusts 127.0.0.1 only).
    proxies = env["C2C__PROXY_HEADERS__TRUSTED_HOSTS"].split(",")
    assert proxies and "*" not in proxies and "127.0.0.1" not in proxies
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = app[probe_name]["httpGet"]
        assert probe["port"] == "http"
        (host,) = [header["value"] for header in probe["httpHeaders"] if header["name"] == "Host"]
        assert host in allowed
        # The scaffold serves the path with that Host; the kubelet's default Host (the pod IP) gets 400.
        assert server.get(probe["path"], headers={"Host": host}).status_code == 200, probe_name
        assert server.get(probe["path"], headers={"Host": f"10.1.2.3:{ports['http']}"}).status_code == 400
    # Shutdown: preStop sleep + drain delay fit in the grace period; the drain covers a readiness failure.
    pre_stop = app["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(env["C2C__HEALTH_CHECKS__DRAIN_DELAY"].removesuffix("s"))
    readiness = app["readinessProbe"]
    assert drain > readiness["periodSeconds"] * readiness["failureThreshold"]
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain + 20
    # The init container runs the deploy check at warning level with the same environment: it passes.
    (init,) = pod["initContainers"]
    assert init["image"] == app["image"]
    init_env = {variable["name"]: variable["value"] for variable in init["env"]}
    assert {name: value for name, value in init_env.items() if name != "C2C__PROMETHEUS__PORT"} == env
    assert init["command"][:5] == ["python", "-m", "c2casgiutils", "check", f"{SLUG}.main:app"]
    assert init["command"][5:] == ["--fail-level", "warning"]
    secrets = _dotenv(project.path / ".env")  # the Secret of envFrom
    run_env = {**_image_environment(project), **secrets, **init_env, "C2C__REDIS__URL": redis_server.url}
    check = _run([str(project.python), *init["command"][1:]], cwd=project.path, timeout=120, **run_env)
    assert check.returncode == 0, check.stdout + check.stderr
