"""`c2casgiutils.config`: every documented variable, with the reference's names and defaults, in one object."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from c2casgiutils import config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)


# The documented variables of c2casgiutils 0.14 and their defaults (reference section 2).
REFERENCE_DEFAULTS: list[tuple[str, object]] = [
    ("C2C__REDIS__URL", None),
    ("C2C__REDIS__OPTIONS", {}),
    ("C2C__REDIS__SENTINELS", None),
    ("C2C__REDIS__SERVICENAME", None),
    ("C2C__REDIS__DB", 0),
    ("C2C__REDIS__BROADCAST_PREFIX", "broadcast_api_"),
    ("C2C__PROMETHEUS__PREFIX", "c2casgiutils_"),
    ("C2C__PROMETHEUS__PORT", 9000),
    ("C2C__SENTRY__DSN", None),
    ("C2C__SENTRY__DEBUG", False),
    ("C2C__SENTRY__RELEASE", None),
    ("C2C__SENTRY__ENVIRONMENT", "production"),
    ("C2C__SENTRY__DIST", None),
    ("C2C__SENTRY__SAMPLE_RATE", 1.0),
    ("C2C__SENTRY__IGNORE_ERRORS", []),
    ("C2C__SENTRY__MAX_BREADCRUMBS", 100),
    ("C2C__SENTRY__ATTACH_STACKTRACE", False),
    ("C2C__SENTRY__SEND_DEFAULT_PII", None),
    ("C2C__SENTRY__EVENT_SCRUBBER", None),
    ("C2C__SENTRY__INCLUDE_SOURCE_CONTEXT", True),
    ("C2C__SENTRY__INCLUDE_LOCAL_VARIABLES", True),
    ("C2C__SENTRY__ADD_FULL_STACK", False),
    ("C2C__SENTRY__MAX_STACK_FRAMES", 100),
    ("C2C__SENTRY__SERVER_NAME", None),
    ("C2C__SENTRY__IN_APP_INCLUDE", []),
    ("C2C__SENTRY__IN_APP_EXCLUDE", []),
    ("C2C__SENTRY__MAX_REQUEST_BODY_SIZE", "medium"),
    ("C2C__SENTRY__MAX_VALUE_LENGTH", 1024),
    ("C2C__SENTRY__CA_CERTS", None),
    ("C2C__SENTRY__SEND_CLIENT_REPORTS", True),
    ("C2C__AUTH__JWT__SECRET", None),
    ("C2C__AUTH__JWT__ALGORITHM", "HS256"),
    ("C2C__AUTH__JWT__COOKIE__NAME", "c2c-jwt-auth"),
    ("C2C__AUTH__JWT__COOKIE__AGE", datetime.timedelta(days=7)),
    ("C2C__AUTH__JWT__COOKIE__SAME_SITE", "lax"),
    ("C2C__AUTH__JWT__COOKIE__SECURE", True),
    ("C2C__AUTH__JWT__COOKIE__PATH", None),
    ("C2C__AUTH__SECRET", None),
    ("C2C__AUTH__GITHUB__REPOSITORY", None),
    ("C2C__AUTH__GITHUB__ACCESS_TYPE", "pull"),
    ("C2C__AUTH__GITHUB__ACCESS_TYPE_READ_ONLY", "pull"),
    ("C2C__AUTH__GITHUB__ACCESS_TYPE_READ_WRITE", "push"),
    ("C2C__AUTH__GITHUB__ACCESS_TYPE_ADMIN", "admin"),
    ("C2C__AUTH__GITHUB__AUTHORIZE_URL", "https://github.com/login/oauth/authorize"),
    ("C2C__AUTH__GITHUB__TOKEN_URL", "https://github.com/login/oauth/access_token"),
    ("C2C__AUTH__GITHUB__USER_URL", "https://api.github.com/user"),
    ("C2C__AUTH__GITHUB__REPO_URL", "https://api.github.com/repos"),
    ("C2C__AUTH__GITHUB__CLIENT_ID", None),
    ("C2C__AUTH__GITHUB__CLIENT_SECRET", None),
    ("C2C__AUTH__GITHUB__SCOPE", "repo"),
    ("C2C__AUTH__GITHUB__PROXY_URL", None),
    ("C2C__AUTH__GITHUB__STATE_COOKIE", "c2c-state"),
    ("C2C__AUTH__GITHUB__STATE_COOKIE_AGE", datetime.timedelta(minutes=10)),
    ("C2C__AUTH__GITHUB__ACCESS_TOKEN_EXPIRATION_MARGIN", datetime.timedelta(minutes=1)),
    ("C2C__AUTH__TEST__USERNAME", None),
    ("C2C__TOOLS__LOGGING__REDIS_PREFIX", "c2c_logging_level_"),
    ("C2C__TOOLS__LOGGING__APPLICATION_MODULE", "c2casgiutils"),
    ("C2C__PROXY_HEADERS__TYPE", "none"),
    ("C2C__PROXY_HEADERS__TRUSTED_HOSTS", ["127.0.0.1"]),
    ("C2C__HTTP", False),
    ("C2C__ROUTE_PREFIX", "/"),
]


def _value(settings: config.Settings, variable: str) -> object:
    current: object = settings
    for part in variable.removeprefix("C2C__").lower().split("__"):
        current = getattr(current, part)
    return current


@pytest.mark.parametrize(("variable", "default"), REFERENCE_DEFAULTS, ids=[v for v, _ in REFERENCE_DEFAULTS])
def test_reference_defaults(variable: str, default: object) -> None:
    assert _value(config.Settings(), variable) == default


def test_every_documented_variable_exists_and_nothing_else_is_missing() -> None:
    from c2c_config import iter_fields

    ours = {info.env_var for info in iter_fields(config.Settings)}
    reference = {variable for variable, _ in REFERENCE_DEFAULTS}
    assert reference <= ours
    # Only the Sentry tags are not a plain field (they come from C2C__SENTRY__TAG_<NAME>).
    assert "C2C__SENTRY__TAGS" in ours


def test_sentry_project_root_defaults_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.Settings().sentry.project_root == str(tmp_path)


def test_sentry_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__SENTRY__TAG_SERVICE", "my-service")
    monkeypatch.setenv("c2c__sentry__tag_Team", "ops")
    settings = config.Settings()
    assert settings.sentry.tags == {"service": "my-service", "team": "ops"}
    from c2c_config import find_unknown_variables

    assert find_unknown_variables(config.Settings) == []  # tags are not typos


def test_sentry_lists_from_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__SENTRY__IGNORE_ERRORS", "KeyError, ValueError")
    monkeypatch.setenv("C2C__SENTRY__IN_APP_INCLUDE", '["app", "lib"]')
    settings = config.Settings()
    assert settings.sentry.ignore_errors == ["KeyError", "ValueError"]
    assert settings.sentry.in_app_include == ["app", "lib"]


@pytest.mark.parametrize(
    ("variable", "value", "path", "expected"),
    [
        ("C2C__AUTH__JWT__COOKIE__AGE", "PT1H", "auth.jwt.cookie.age", datetime.timedelta(hours=1)),
        ("C2C__AUTH__JWT__COOKIE__AGE", "3600", "auth.jwt.cookie.age", datetime.timedelta(hours=1)),
        ("C2C__AUTH__JWT__COOKIE__SAME_SITE", "Strict", "auth.jwt.cookie.same_site", "strict"),
        ("C2C__AUTH__GITHUB__STATE_COOKIE_AGE", "5m", "auth.github.state_cookie_age", datetime.timedelta(minutes=5)),
        # c2casgiutils' master branch read ACCESS_TYPE nowhere: accepted, not used.
        ("C2C__AUTH__GITHUB__ACCESS_TYPE", "push", "auth.github.access_type_read_only", "pull"),
        # Choices read whatever their case, as SAME_SITE and PROXY_HEADERS__TYPE.
        ("C2C__AUTH__JWT__ALGORITHM", "hs512", "auth.jwt.algorithm", "HS512"),
        ("C2C__HEALTH_CHECKS__DETAILS", "Always", "health_checks.details", "always"),
    ],
)
def test_auth_values(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, path: str, expected: object) -> None:
    monkeypatch.setenv(variable, value)
    current: object = config.Settings()
    for part in path.split("."):
        current = getattr(current, part)
    assert current == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("C2C__SENTRY__DSN", "not-a-dsn", "C2C__SENTRY__DSN='not-a-dsn': not a Sentry DSN (Unsupported scheme"),
        ("C2C__SENTRY__DSN", "https://host/1", "not a Sentry DSN (Missing public key)"),
        ("C2C__BROADCAST__DEFAULT_TIMEOUT", "0", "the default broadcast timeout must be longer than 0 s"),
        ("C2C__REDIS__URL", "redis://localhost:notaport/0", "its port is not a number from 0 to 65535"),
    ],
)
def test_values_refused_at_start_not_at_first_use(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """What the SDK or redis-py refuse only when used (a traceback naming no variable) is refused
    with the settings, the variable named."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(config.ConfigError) as info:
        config.Settings()
    assert message in str(info.value)


def test_auth_secrets_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("C2C__AUTH__SECRET", "C2C__AUTH__JWT__SECRET", "C2C__AUTH__GITHUB__CLIENT_SECRET"):
        monkeypatch.setenv(variable, "do-not-print-me")
    settings = config.Settings()
    assert "do-not-print-me" not in repr(settings)
    assert settings.auth.secret is not None
    assert settings.auth.secret.get_secret_value() == "do-not-print-me"


def test_process_settings_are_lazy_and_reloadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__PROMETHEUS__PORT", "9101")
    held = config.reload()
    assert config.settings is held
    assert config.settings.prometheus.port == 9101
    monkeypatch.setenv("C2C__PROMETHEUS__PORT", "9102")
    assert config.reload() is held
    assert held.prometheus.port == 9102
    monkeypatch.delenv("C2C__PROMETHEUS__PORT")
    config.reload()
    assert config.settings.prometheus.port == 9000


def test_fresh_settings_object() -> None:
    assert config.Settings() is not config.Settings()
    assert isinstance(config.Settings(), config.Settings)


def test_import_reads_no_environment() -> None:
    """A bad value does not break `import c2casgiutils.config`; it fails when settings are used, by name."""
    env = {**os.environ, "C2C__PROMETHEUS__PORT": "many"}
    code = "from c2casgiutils import config\nprint('imported')\nconfig.settings"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "imported"
    assert result.returncode == 1
    assert "ConfigError: invalid configuration:" in result.stderr
    assert "C2C__PROMETHEUS__PORT='many': Input should be a valid integer" in result.stderr


def test_settings_reference_is_up_to_date() -> None:
    """docs/settings.md holds the table generated from the models; regenerate it when this fails."""
    result = subprocess.run(
        [sys.executable, "-m", "c2c_config", "docs", "c2casgiutils.config:Settings", "docs/settings.md", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_stale_reference_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text((ROOT / "docs" / "settings.md").read_text().replace("`broadcast_api_`", "`old_`"))
    command = [sys.executable, "-m", "c2c_config", "docs", "c2casgiutils.config:Settings", str(stale)]
    result = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "is stale" in result.stderr
    subprocess.run(command, check=True)
    assert stale.read_text() == (ROOT / "docs" / "settings.md").read_text()


def test_every_variable_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for variable, _ in REFERENCE_DEFAULTS:
        assert f"`{variable}`" in text
    assert "`C2C__SENTRY__TAG_<NAME>`" in text
