"""Prometheus metrics read from a real prometheus_client registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from c2c_config import PrometheusSettings
from c2c_health import Check, Factory, HealthChecksSettings, Result, Settings, Wrong, get_metrics

MakeFactory = Callable[..., Factory]

GAUGE = "c2casgiutils_health_checks_failure"
HISTOGRAM = "c2casgiutils_health_checks_duration_seconds"


class Ok(Check):
    async def check(self) -> Result:
        return Result()


class Hanging(Check):
    async def check(self) -> Result:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_gauge_holds_the_last_status_code(make_factory: MakeFactory, registry: CollectorRegistry) -> None:
    factory = make_factory(timeout=0.2)
    factory.add(Ok(name="primary"))
    factory.add(Ok(name="replica"))  # same class, told apart by name
    factory.add(Wrong())
    factory.add(Hanging())
    await factory.run()
    assert registry.get_sample_value(GAUGE, {"name": "primary"}) == 200
    assert registry.get_sample_value(GAUGE, {"name": "replica"}) == 200
    assert registry.get_sample_value(GAUGE, {"name": "Wrong"}) == 500
    assert registry.get_sample_value(GAUGE, {"name": "Hanging"}) == 500
    assert registry.get_sample_value(HISTOGRAM + "_count", {"name": "primary"}) == 1
    # The timed-out run is counted with (at least) its timeout.
    hanging_sum = registry.get_sample_value(HISTOGRAM + "_sum", {"name": "Hanging"})
    assert hanging_sum is not None
    assert hanging_sum >= 0.2
    assert registry.get_sample_value(HISTOGRAM + "_bucket", {"name": "Hanging", "le": "0.1"}) == 0


async def test_gauge_follows_a_check_that_heals(make_factory: MakeFactory, registry: CollectorRegistry) -> None:
    class Flaky(Check):
        healthy = False

        async def check(self) -> Result:
            return Result(status_code=200 if self.healthy else 503)

    factory = make_factory()
    flaky = factory.add(Flaky())
    assert isinstance(flaky, Flaky)
    await factory.run()
    assert registry.get_sample_value(GAUGE, {"name": "Flaky"}) == 503
    flaky.healthy = True
    await factory.run()
    assert registry.get_sample_value(GAUGE, {"name": "Flaky"}) == 200
    assert registry.get_sample_value(HISTOGRAM + "_count", {"name": "Flaky"}) == 2


async def test_registered_lazily_with_the_prefix_setting(registry: CollectorRegistry) -> None:
    settings = Settings(prometheus=PrometheusSettings(prefix="myapp_"), health_checks=HealthChecksSettings())
    factory = Factory(registry=registry, settings=lambda: settings)
    factory.add(Ok())
    assert generate_latest(registry) == b""  # nothing registered before the first run
    await factory.run(name="nothing")
    assert generate_latest(registry) == b""  # nor by a run that ran no check
    await factory.run()
    assert registry.get_sample_value("myapp_health_checks_failure", {"name": "Ok"}) == 200
    assert registry.get_sample_value(GAUGE, {"name": "Ok"}) is None
    # Only the registered checks' names become labels, whatever the query asked for.
    await factory.run(name="<script>,x" * 10, tags="y")
    names = {sample.labels["name"] for metric in registry.collect() for sample in metric.samples}
    assert names == {"Ok"}


def test_same_registry_and_prefix_share_one_metrics_object(registry: CollectorRegistry) -> None:
    first = get_metrics(registry, "a_")
    assert first is not None
    assert get_metrics(registry, "a_") is first
    assert get_metrics(registry, "b_") is not first
    assert get_metrics(CollectorRegistry(), "a_") is not first


def test_name_taken_by_another_collector_disables_metrics(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    Gauge("taken_health_checks_duration_seconds", "someone else's", registry=registry)
    with caplog.at_level(logging.WARNING, logger="c2c_health"):
        assert get_metrics(registry, "taken_") is None
    assert "metrics disabled for prefix 'taken_'" in caplog.text
    # The gauge registered first was removed again: nothing half-registered stays behind.
    assert registry.get_sample_value("taken_health_checks_failure", {"name": "x"}) is None
    assert "taken_health_checks_failure" not in generate_latest(registry).decode()
