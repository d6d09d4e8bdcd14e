"""Package-local fixtures: a factory with its own settings and Prometheus registry, a FastAPI app."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from c2c_health import Authorizer, Factory, HealthChecksSettings, Settings, create_router

MakeFactory = Callable[..., Factory]

# Hypothesis profiles (`dev`, `ci`) come from the c2c-testing plugin.


def make_settings(**health_checks: Any) -> Settings:
    """Settings with these `health_checks` values (durations in seconds), ignoring the environment's."""
    values = {
        key: datetime.timedelta(seconds=value) if isinstance(value, int | float) else value
        for key, value in health_checks.items()
    }
    return Settings(health_checks=HealthChecksSettings.model_validate(values))


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh Prometheus registry."""
    return CollectorRegistry()


@pytest.fixture
def make_factory(registry: CollectorRegistry) -> MakeFactory:
    """`make_factory(timeout=0.5, cache_ttl=0, details="always")` -> a `Factory` on `registry`."""

    def make(**health_checks: Any) -> Factory:
        settings = make_settings(**health_checks)
        return Factory(registry=registry, settings=lambda: settings)

    return make


MakeApp = Callable[..., FastAPI]


@pytest.fixture
def make_app() -> MakeApp:
    """`make_app(factory, authorize=None)` -> an app with the router in a sub-application mounted at `/c2c`."""

    def make(factory: Factory, authorize: Authorizer | None = None) -> FastAPI:
        c2c = FastAPI()
        c2c.include_router(create_router(factory, authorize=authorize))
        app = FastAPI()
        app.mount("/c2c", c2c)
        return app

    return make
