"""Check, Result, Factory: names, filters, concurrency, timeouts, errors, cache."""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import c2c_health._core
from c2c_health import GENERIC_ERROR, TIMEOUT_ERROR, Check, Factory, Result, Wrong, parse_filter
from c2c_testing import free_port

MakeFactory = Callable[..., Factory]


class Ok(Check):
    """Healthy, with a payload."""

    async def check(self) -> Result:
        return Result(status_code=200, payload={"message": "Everything is fine!"})


class Failing(Check):
    """Returns a failure the way the c2casgiutils README shows."""

    async def check(self) -> Result:
        try:
            raise RuntimeError("connection to db.internal:5432 failed for user admin")
        except Exception as e:
            return Result(status_code=500, payload={"error": str(e)})


class Raising(Check):
    async def check(self) -> Result:
        raise RuntimeError("password=hunter2 in SELECT * FROM secrets")


class Hanging(Check):
    async def check(self) -> Result:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Stubborn(Check):
    """Ignores cancellation for a while: the runner must not wait for it."""

    def __init__(self, release: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = release
        self.calls = 0

    async def check(self) -> Result:
        self.calls += 1
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue
        return Result()


class Counting(Check):
    def __init__(self, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.delay = delay

    async def check(self) -> Result:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return Result(payload={"calls": self.calls})


class Rendezvous(Check):
    """Healthy only if every check of the barrier runs at the same time (sequential runs would time out)."""

    def __init__(self, barrier: asyncio.Barrier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    async def check(self) -> Result:
        await self.barrier.wait()
        return Result()


# -- Check ------------------------------------------------------------------------------------


def test_name_defaults_to_class_name_and_can_be_overridden() -> None:
    assert Ok().name == "Ok"
    assert Ok(name="primary").name == "primary"
    check = Ok()
    check.name = "renamed"
    assert check.name == "renamed"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (None, []),
        (["liveness", "all"], ["liveness", "all"]),
        (("a",), ["a"]),
        # A comma-separated string is split, not iterated character by character.
        ("readiness, all", ["readiness", "all"]),
    ],
)
def test_tags(tags: Any, expected: list[str]) -> None:
    assert Ok(tags=tags).tags == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "check name ''"),
        ({"name": "a,b"}, "without commas"),
        ({"name": " padded"}, "surrounding spaces"),
        ({"tags": ["ok", "bad,tag"]}, "tag 'bad,tag'"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": -1.0}, "timeout must be a positive number"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"timeout": datetime.timedelta(0)}, "timeout must be a positive number"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ok(**kwargs)


def test_name_set_by_a_subclass_before_super_init_is_kept() -> None:
    class Named(Check):
        def __init__(self, instance: str) -> None:
            self.name = f"named-{instance}"
            super().__init__(tags=["x"])

        async def check(self) -> Result:
            return Result()

    assert Named("a").name == "named-a"
    assert Named("a").tags == ["x"]


def test_timeout_accepts_timedelta() -> None:
    assert Ok(timeout=datetime.timedelta(milliseconds=1500)).timeout == 1.5


def test_user_check_without_super_init_still_runs() -> None:
    class Legacy(Check):
        def __init__(self) -> None:  # does not call Check.__init__
            self.extra = 1

        async def check(self) -> Result:
            return Result()

    check = Legacy()
    assert check.name == "Legacy"
    factory = Factory()
    factory.add(check)
    assert factory.select(tags="x") == []
    assert factory.select(name="Legacy") == [check]


# -- Factory registry ---------------------------------------------------------------------------


class Pointing(Check):
    """A check of some resource (told apart by an attribute, as two databases by their sessionmakers)."""

    def __init__(self, resource: object, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource = resource

    async def check(self) -> Result:
        return Result(payload={"resource": str(self.resource)})


DUPLICATE_WARNING = "Two health checks are named"


def _duplicate_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith(DUPLICATE_WARNING)]


def test_same_object_again_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory()
    first = factory.add(Ok())
    assert factory.add(first) is first
    assert factory.add(first) is first
    assert factory.registered == {"Ok": first}
    assert _duplicate_warnings(caplog) == []


def test_same_name_both_registered_the_second_renamed_with_a_logged_warning(
    caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    factory = Factory()
    one, two, three = Pointing("db1"), Pointing("db2"), Pointing("db3")
    with caplog.at_level(logging.WARNING, logger="c2c_health"):
        for check in (one, two, three):
            assert factory.add(check) is check
    assert factory.registered == {"Pointing": one, "Pointing-2": two, "Pointing-3": three}
    assert factory.checks == [one, two, three]
    assert [check.name for check in (one, two, three)] == ["Pointing"] * 3  # the objects are not changed
    records = _duplicate_warnings(caplog)
    assert [record.levelno for record in records] == [logging.WARNING, logging.WARNING]
    assert records[0].name == "c2c_health"
    message = records[0].getMessage()
    assert repr(one) in message and repr(two) in message and "'Pointing-2'" in message and "name=" in message
    assert "'Pointing-3'" in records[1].getMessage()
    assert len(recwarn) == 0  # logged, not warnings.warn


def test_generated_name_skips_names_already_taken(caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory()
    factory.add(Pointing("a"))
    explicit = factory.add(Pointing("b", name="Pointing-2"))
    third = factory.add(Pointing("c"))
    assert factory.registered["Pointing-2"] is explicit
    assert factory.registered["Pointing-3"] is third
    # An explicit name that is already taken is suffixed too.
    fourth = factory.add(Pointing("d", name="Pointing-2"))
    assert factory.registered["Pointing-2-2"] is fourth


def test_names_are_per_name_not_per_class(caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory()
    factory.add(Pointing("a", name="primary"))
    factory.add(Pointing("b", name="replica"))
    factory.add(Ok(name="Pointing"))
    factory.add(Pointing("c"))  # its name is taken by an Ok check: renamed, not confused with it
    assert list(factory.registered) == ["primary", "replica", "Pointing", "Pointing-2"]
    assert len(_duplicate_warnings(caplog)) == 1


def test_an_equal_check_takes_the_place_of_the_registered_one(caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory()
    resource = object()
    factory.add(Pointing(resource, tags=["a"]))
    factory.add(Pointing("other"))
    again = factory.add(Pointing(resource, tags=["a"]))
    assert factory.registered == {"Pointing": again, "Pointing-2": factory.registered["Pointing-2"]}
    assert len(_duplicate_warnings(caplog)) == 1  # only for "other"
    # Another class, other tags, another name or another resource is another check.
    factory.add(Pointing(resource, tags=["b"]))
    factory.add(Pointing(resource, tags=["a"], name="mine"))
    factory.add(Pointing(object(), tags=["a"]))
    assert list(factory.registered) == ["Pointing", "Pointing-2", "Pointing-3", "mine", "Pointing-4"]


def test_attributes_that_cannot_be_compared_make_distinct_checks() -> None:
    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparison")

        __hash__ = object.__hash__

    factory = Factory()
    factory.add(Pointing(Weird()))
    factory.add(Pointing(Weird()))
    assert list(factory.registered) == ["Pointing", "Pointing-2"]


def test_checks_of_a_closed_event_loop_are_replaced_by_the_next_run(caplog: pytest.LogCaptureFixture) -> None:
    """A lifespan registering new check objects at each run (one event loop per TestClient) keeps its names."""
    factory = Factory()
    kept = factory.add(Pointing("added at import, outside any loop"))

    async def lifespan() -> tuple[Check, Check]:
        # New objects at each run, as a lifespan creating its engines and sessionmakers.
        return factory.add(Pointing(object())), factory.add(Pointing(object()))

    runs = [asyncio.run(lifespan()) for _ in range(4)]
    last_one, last_two = runs[-1]
    assert factory.registered == {"Pointing": kept, "Pointing-2": last_one, "Pointing-3": last_two}
    assert len(_duplicate_warnings(caplog)) == 2  # the first run only


def test_checks_of_a_running_event_loop_are_never_replaced() -> None:
    factory = Factory()

    async def register() -> None:
        factory.add(Pointing(object()))
        await asyncio.sleep(0)
        factory.add(Pointing(object()))  # the same loop, still running: a second database, kept

    asyncio.run(register())
    assert list(factory.registered) == ["Pointing", "Pointing-2"]


def test_name_filter_matches_registered_names_exactly() -> None:
    factory = Factory()
    one, two = factory.add(Pointing("a", tags=["db"])), factory.add(Pointing("b", tags=["db"]))
    assert factory.select(name="Pointing") == [one]
    assert factory.select(name="Pointing-2") == [two]
    assert factory.select(name="Pointing-2,Pointing") == [one, two]
    assert factory.select(name="pointing") == []
    assert factory.select(name="Pointing-") == []
    assert factory.select(tags="db") == [one, two]


async def test_renamed_checks_are_reported_under_their_registered_names(make_factory: MakeFactory) -> None:
    factory = make_factory()
    factory.add(Pointing("a"))
    factory.add(Pointing("b"))
    report = await factory.run()
    assert [(outcome.name, outcome.payload) for outcome in report.outcomes] == [
        ("Pointing", {"resource": "a"}),
        ("Pointing-2", {"resource": "b"}),
    ]
    (only,) = (await factory.run(name="Pointing-2")).outcomes
    assert only.payload == {"resource": "b"}


def test_remove_and_clear_use_registered_names() -> None:
    factory = Factory()
    factory.add(Pointing("a"))
    second = factory.add(Pointing("b"))
    factory.remove("Pointing")
    assert factory.registered == {"Pointing-2": second}
    with pytest.raises(KeyError):
        factory.remove("Pointing")
    third = factory.add(Pointing("c"))  # the freed name is reused
    assert factory.registered == {"Pointing-2": second, "Pointing": third}
    factory.clear()
    assert factory.checks == []


def test_add_rejects_non_checks() -> None:
    with pytest.raises(TypeError, match="instance of c2c_health.Check"):
        Factory().add(object())  # type: ignore[arg-type]


# -- filters ------------------------------------------------------------------------------------

FILTER_CHECKS = {
    "Redis": ["liveness", "redis", "all"],
    "DB": ["database", "readiness", "all"],
    "Alembic": ["database", "migrations"],
    "Untagged": [],
}


@pytest.mark.parametrize(
    ("name", "tags", "expected"),
    [
        # no filter: everything
        (None, None, {"Redis", "DB", "Alembic", "Untagged"}),
        ("", "", {"Redis", "DB", "Alembic", "Untagged"}),
        # name: exact, comma list or repeated, unknown matches nothing
        ("Redis", None, {"Redis"}),
        ("Redis,DB", None, {"Redis", "DB"}),
        (["Redis", "Alembic"], None, {"Redis", "Alembic"}),
        ("redis", None, set()),  # case-sensitive, as in c2casgiutils
        ("Nope", None, set()),
        # tags: any listed tag matches
        (None, "database", {"DB", "Alembic"}),
        (None, "database,critical", {"DB", "Alembic"}),
        (None, " liveness , migrations ", {"Redis", "Alembic"}),
        (None, ["redis", "readiness"], {"Redis", "DB"}),
        (None, "critical", set()),
        # both: ANDed
        ("DB", "database", {"DB"}),
        ("Redis", "database", set()),
        ("Redis,Alembic", "all", {"Redis"}),
    ],
)
def test_selection_truth_table(name: Any, tags: Any, expected: set[str]) -> None:
    factory = Factory()
    for check_name, check_tags in FILTER_CHECKS.items():
        factory.add(Ok(tags=check_tags, name=check_name))
    assert {check.name for check in factory.select(name, tags)} == expected


_item = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)


@given(st.lists(_item, max_size=5))
@example([" a ,b", "b,,c", ""])
@example([",,", "  "])
def test_parse_filter_properties(values: list[str]) -> None:
    parsed = parse_filter(values)
    expected = {part.strip() for value in values for part in value.split(",")} - {""}
    if not expected:
        assert parsed is None
    else:
        assert parsed == frozenset(expected)
        assert all(item and item == item.strip() and "," not in item for item in parsed)
        # Joining the parsed items back into one comma list gives the same filter.
        assert parse_filter(",".join(sorted(parsed))) == parsed
        assert parse_filter(sorted(parsed)) == parsed


@given(_item)
def test_parse_filter_single_string_equals_list_of_one(value: str) -> None:
    assert parse_filter(value) == parse_filter([value])


# -- running ------------------------------------------------------------------------------------


async def test_report_shape_status_and_public_payloads(make_factory: MakeFactory) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["a"]))
    factory.add(Failing(tags=["b"]))
    report = await factory.run()
    assert report.status_code == 500
    detailed = report.to_model(details=True)
    public = report.to_model(details=False)
    assert [(e.name, e.tags, e.status_code) for e in detailed.entities] == [("Ok", ["a"], 200), ("Failing", ["b"], 500)]
    assert detailed.entities[0].payload == {"message": "Everything is fine!"}
    assert "db.internal" in detailed.entities[1].payload["error"]
    assert [e.payload for e in public.entities] == [{}, {"error": GENERIC_ERROR}]
    assert all(e.time_taken >= 0 for e in detailed.entities)
    assert detailed.time_taken >= max(e.time_taken for e in detailed.entities)


async def test_status_is_the_worst_and_200_when_nothing_ran(make_factory: MakeFactory) -> None:
    class Teapot(Check):
        async def check(self) -> Result:
            return Result(status_code=418)

    factory = make_factory()
    assert (await factory.run()).status_code == 200
    factory.add(Ok())
    factory.add(Teapot())
    assert (await factory.run()).status_code == 418
    factory.add(Wrong())
    assert (await factory.run()).status_code == 500
    assert (await factory.run(name="Nope")).to_model(details=True).entities == []


async def test_checks_run_concurrently(make_factory: MakeFactory) -> None:
    barrier = asyncio.Barrier(3)
    factory = make_factory(timeout=5)
    for index in range(3):
        factory.add(Rendezvous(barrier, name=f"r{index}"))
    report = await factory.run()
    # Run one after the other, the first would wait forever at the barrier and time out.
    assert [outcome.status_code for outcome in report.outcomes] == [200, 200, 200]


async def test_hanging_check_times_out_within_its_bound(make_factory: MakeFactory) -> None:
    factory = make_factory(timeout=0.3)
    factory.add(Hanging())
    factory.add(Ok())
    start = time.monotonic()
    report = await factory.run()
    assert time.monotonic() - start < 5
    hanging, ok = report.outcomes
    assert (hanging.status_code, hanging.payload) == (500, {"error": TIMEOUT_ERROR, "timeout": 0.3})
    assert hanging.public_payload == {"error": TIMEOUT_ERROR}
    assert ok.status_code == 200


async def test_per_check_timeout_overrides_the_default(make_factory: MakeFactory) -> None:
    factory = make_factory(timeout=60)
    factory.add(Hanging(timeout=0.2))
    start = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - start < 5
    assert outcome.payload == {"error": TIMEOUT_ERROR, "timeout": 0.2}


async def test_check_that_ignores_cancellation_is_still_bounded(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()
    factory = make_factory(timeout=0.2)
    check = factory.add(Stubborn(release))
    assert isinstance(check, Stubborn)
    start = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - start < 5
    assert outcome.payload["error"] == TIMEOUT_ERROR
    assert len(factory._abandoned.get()) == 1  # still running, kept referenced
    # While it is still going, probes do not start another run of that check.
    start = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - start < 5
    assert outcome.payload == {"error": TIMEOUT_ERROR, "timeout": 0.2, "previous_run_pending": True}
    assert outcome.public_payload == {"error": TIMEOUT_ERROR}
    assert check.calls == 1
    release.set()
    for _ in range(100):
        if not factory._abandoned.get():
            break
        await asyncio.sleep(0.01)
    assert not factory._abandoned.get()
    (outcome,) = (await factory.run()).outcomes  # runs again, and the event is set: healthy
    assert (outcome.status_code, check.calls) == (200, 2)


async def test_exception_is_logged_in_full_and_hidden_from_the_public(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    factory = make_factory()
    factory.add(Raising(name="db"))
    with caplog.at_level(logging.ERROR, logger="c2c_health"):
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500
    assert outcome.payload == {"error": "password=hunter2 in SELECT * FROM secrets"}
    assert outcome.public_payload == {"error": GENERIC_ERROR}
    (record,) = [r for r in caplog.records if r.name == "c2c_health"]
    assert "'db'" in record.getMessage()
    assert record.exc_info is not None
    assert "hunter2" in caplog.text  # traceback in the log
    assert "Traceback" in caplog.text


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (None, "invalid result"),
        ({"status_code": 200}, "invalid result"),
        # Validation bypassed (model_construct): the runner still refuses what is not a status code.
        (Result.model_construct(status_code="200"), "invalid result"),
        (Result.model_construct(status_code=True), "invalid result"),
        (Result.model_construct(status_code=None), "invalid result"),
        (Result(status_code=42), "invalid status code"),
        (Result(status_code=600), "invalid status code"),
    ],
)
async def test_invalid_results_fail(make_factory: MakeFactory, returned: Any, error: str) -> None:
    class Bad(Check):
        async def check(self) -> Result:
            return returned  # type: ignore[no-any-return]

    factory = make_factory()
    factory.add(Bad())
    (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500
    assert error in outcome.payload["error"]
    assert outcome.public_payload == {"error": GENERIC_ERROR}


async def test_payload_is_made_json_compatible(make_factory: MakeFactory) -> None:
    class Odd(Check):
        async def check(self) -> Result:
            return Result(payload={"when": datetime.date(2026, 1, 2), "n": 1}, public_payload={"ok": True})

    factory = make_factory()
    factory.add(Odd())
    (outcome,) = (await factory.run()).outcomes
    assert outcome.payload == {"when": "2026-01-02", "n": 1}
    assert outcome.public_payload == {"ok": True}


async def test_public_payload_given_by_the_check_is_shown(make_factory: MakeFactory) -> None:
    class Explicit(Check):
        async def check(self) -> Result:
            return Result(status_code=503, payload={"error": "secret"}, public_payload={"error": "maintenance"})

    factory = make_factory()
    factory.add(Explicit())
    public = (await factory.run()).to_model(details=False)
    assert public.entities[0].payload == {"error": "maintenance"}


async def test_factory_check_keeps_the_c2casgiutils_signature(make_factory: MakeFactory) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["x"]))
    factory.add(Failing(tags=["y"]))
    result = await factory.check(name=None, tags="x")
    assert result.status_code == 200
    assert [e.payload for e in result.entities] == [{"message": "Everything is fine!"}]


# -- cache --------------------------------------------------------------------------------------


async def test_without_cache_every_run_executes(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=0)
    counting = factory.add(Counting(delay=0.05))
    assert isinstance(counting, Counting)
    await asyncio.gather(*(factory.run() for _ in range(5)))
    assert counting.calls == 5


async def test_cache_shares_the_run_in_flight_and_the_result(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=60)
    counting = factory.add(Counting(delay=0.1))
    assert isinstance(counting, Counting)
    reports = await asyncio.gather(*(factory.run() for _ in range(50)))
    assert counting.calls == 1
    assert len({id(report) for report in reports}) == 1
    await factory.run()
    assert counting.calls == 1
    factory.clear_cache()
    await factory.run()
    assert counting.calls == 2


async def test_cache_is_per_selection(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=60)
    a = factory.add(Counting(name="a", tags=["x"]))
    b = factory.add(Counting(name="b", tags=["y"]))
    assert isinstance(a, Counting)
    assert isinstance(b, Counting)
    await factory.run(tags="x")
    await factory.run(name="a")  # same selection as tags=x: shared entry
    await factory.run(tags=" x ,")
    assert (a.calls, b.calls) == (1, 0)
    await factory.run()
    assert (a.calls, b.calls) == (2, 1)
    await factory.run(tags="y")
    assert (a.calls, b.calls) == (2, 2)


async def test_cache_expires(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=0.2)
    counting = factory.add(Counting())
    assert isinstance(counting, Counting)
    await factory.run()
    await factory.run()
    assert counting.calls == 1
    await asyncio.sleep(0.3)
    await factory.run()
    assert counting.calls == 2


def test_runs_left_by_a_loop_closed_abruptly_are_not_the_next_loops(make_factory: MakeFactory) -> None:
    """A loop closed without cancelling its tasks (a bare `loop.close()`) leaves a run in progress and an
    abandoned one behind: the next loop neither awaits the first nor skips its check for the second."""
    factory = make_factory(cache_ttl=60, timeout=0.2)
    stubborn = factory.add(Stubborn(asyncio.Event(), name="stubborn"))
    counting = factory.add(Counting(delay=0.1, name="counting"))
    assert isinstance(stubborn, Stubborn)
    assert isinstance(counting, Counting)

    async def first() -> None:
        (outcome,) = (await factory.run(name="stubborn")).outcomes  # times out: abandoned, still running
        assert outcome.payload == {"error": TIMEOUT_ERROR, "timeout": 0.2}
        asyncio.ensure_future(factory.run(name="counting"))  # in progress when the loop stops
        await asyncio.sleep(0.05)
        assert (len(factory._abandoned.get()), len(factory._inflight.get())) == (1, 1)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(first())
    loop.close()  # no cancellation: both tasks stay pending, bound to a closed loop

    async def second() -> tuple[int, int, int]:
        stubborn.release = asyncio.Event()
        stubborn.release.set()
        by_name = {outcome.name: outcome.status_code for outcome in (await factory.run()).outcomes}
        return by_name["stubborn"], by_name["counting"], len(factory._inflight.get())

    # Healthy: a new run of each check in this loop (not "previous run pending", not a dead loop's task).
    assert asyncio.run(second()) == (200, 200, 0)
    assert (stubborn.calls, counting.calls) == (2, 2)


async def test_cancelled_probe_does_not_cancel_the_shared_run(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=60)
    counting = factory.add(Counting(delay=0.2))
    assert isinstance(counting, Counting)
    first = asyncio.ensure_future(factory.run())
    second = asyncio.ensure_future(factory.run())
    await asyncio.sleep(0.05)
    first.cancel()
    report = await second
    assert report.outcomes[0].status_code == 200
    assert counting.calls == 1


async def test_adding_a_check_invalidates_the_cache(make_factory: MakeFactory) -> None:
    factory = make_factory(cache_ttl=60)
    factory.add(Ok())
    assert len((await factory.run()).outcomes) == 1
    factory.add(Wrong())
    assert len((await factory.run()).outcomes) == 2


# -- edges ------------------------------------------------------------------------------------


async def test_non_dict_payload_is_wrapped(make_factory: MakeFactory) -> None:
    class Text(Check):
        async def check(self) -> Result:
            return Result(payload="all good")  # type: ignore[arg-type]

    factory = make_factory()
    factory.add(Text())
    (outcome,) = (await factory.run()).outcomes
    assert (outcome.status_code, outcome.payload) == (200, {"value": "all good"})


async def test_check_cancelling_itself_fails(make_factory: MakeFactory) -> None:
    class SelfCancel(Check):
        async def check(self) -> Result:
            raise asyncio.CancelledError

    factory = make_factory()
    factory.add(SelfCancel())
    factory.add(Ok())
    cancelled, ok = (await factory.run()).outcomes
    assert (cancelled.status_code, cancelled.payload) == (500, {"error": "cancelled"})
    assert cancelled.public_payload == {"error": GENERIC_ERROR}
    assert ok.status_code == 200


async def test_cancelled_run_cancels_its_checks(make_factory: MakeFactory) -> None:
    stopped = asyncio.Event()

    class Watched(Check):
        async def check(self) -> Result:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()
            raise AssertionError("unreachable")

    factory = make_factory(timeout=60)
    factory.add(Watched())
    run = asyncio.ensure_future(factory.run())
    await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.wait_for(stopped.wait(), 5)


async def test_error_of_an_abandoned_check_is_logged(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    class StubbornThenFails(Stubborn):
        async def check(self) -> Result:
            await super().check()
            raise RuntimeError("late failure")

    factory = make_factory(timeout=0.1)
    factory.add(StubbornThenFails(release))
    (outcome,) = (await factory.run()).outcomes
    assert outcome.payload["error"] == TIMEOUT_ERROR
    release.set()
    for _ in range(100):
        if not factory._abandoned.get():
            break
        await asyncio.sleep(0.01)
    assert "ended after its timeout with an error" in caplog.text
    assert "late failure" in caplog.text


async def test_cache_holds_a_bounded_number_of_selections(make_factory: MakeFactory) -> None:
    from c2c_health._core import CACHE_MAX_ENTRIES

    factory = make_factory(cache_ttl=60)
    names = [f"c{index}" for index in range(7)]
    for name in names:
        factory.add(Ok(name=name))
    selections = [[name for bit, name in enumerate(names) if mask >> bit & 1] for mask in range(1, 2**7)]
    for selection in selections:
        await factory.run(name=selection)
    assert len(factory._cache) == CACHE_MAX_ENTRIES
    # The most recent selections are kept.
    assert tuple(selections[-1]) in factory._cache


async def test_url_passwords_are_masked_in_payloads_and_log_lines(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class RaisesUrl(Check):
        async def check(self) -> Result:
            raise ConnectionError("cannot reach redis://:topsecret@cache:6379/0")

    class ReturnsUrl(Check):
        async def check(self) -> Result:
            return Result(status_code=503, payload={"error": "postgresql://app:topsecret@db/app is down"})

    factory = make_factory()
    factory.add(RaisesUrl())
    factory.add(ReturnsUrl())
    with caplog.at_level(logging.WARNING, logger="c2c_health"):
        raised, returned = (await factory.run()).outcomes
    assert raised.payload == {"error": "cannot reach redis://:***@cache:6379/0"}
    assert returned.payload == {"error": "postgresql://app:***@db/app is down"}
    failing_lines = [r.getMessage() for r in caplog.records if "is failing with status" in r.getMessage()]
    assert failing_lines == [
        "Health check 'ReturnsUrl' is failing with status 503: {'error': 'postgresql://app:***@db/app is down'}"
    ]


async def test_synchronous_check_methods_do_not_break_the_report(make_factory: MakeFactory) -> None:
    class SyncOk(Check):
        def check(self) -> Result:  # type: ignore[override]
            return Result(payload={"sync": True})

    class SyncRaises(Check):
        def check(self) -> Result:  # type: ignore[override]
            raise RuntimeError("sync failure")

    factory = make_factory()
    factory.add(SyncOk())
    factory.add(SyncRaises())
    factory.add(Ok())
    sync_ok, sync_raises, ok = (await factory.run()).outcomes
    assert (sync_ok.status_code, sync_ok.payload) == (200, {"sync": True})
    assert (sync_raises.status_code, sync_raises.payload) == (500, {"error": "sync failure"})
    assert ok.status_code == 200


async def test_http_status_enum_is_a_valid_status(make_factory: MakeFactory) -> None:
    class Enum(Check):
        async def check(self) -> Result:
            return Result(status_code=HTTPStatus.SERVICE_UNAVAILABLE)

    factory = make_factory()
    factory.add(Enum())
    report = await factory.run()
    assert report.status_code == 503
    assert type(report.outcomes[0].status_code) is int
    assert report.to_model(details=False).model_dump(mode="json")["status_code"] == 503


class _Dependency(Check):
    """Connects to a real TCP port: refused while nothing listens there; `broken` makes it fail otherwise."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.broken = False

    async def check(self) -> Result:
        if self.broken:
            raise ValueError("the answer of 127.0.0.1 is not a valid handshake")
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.close()
        await writer.wait_closed()
        return Result(status_code=200)


async def test_an_exception_that_goes_on_is_one_traceback_per_failure_streak(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ERROR with a traceback is an error-tracker event: one per incident and exception type, not one a minute."""
    monkeypatch.setattr(c2c_health._core, "FAILURE_LOG_INTERVAL", 0.2)
    dependency = _Dependency(free_port(), name="dependency")
    checks = make_factory(timeout=5)
    checks.add(dependency)

    def above_debug() -> list[tuple[int, str, bool]]:
        tracebacks.extend(record.exc_info for record in caplog.records if record.exc_info is not None)
        lines = [
            (record.levelno, record.getMessage(), record.exc_info is not None)
            for record in caplog.records
            if record.name == "c2c_health" and record.levelno > logging.DEBUG
        ]
        caplog.clear()
        return lines

    tracebacks: list[Any] = []
    with caplog.at_level(logging.DEBUG, logger="c2c_health"):
        assert (await checks.run()).outcomes[0].status_code == 500
        ((level, message, traceback),) = above_debug()
        assert (level, message, traceback) == (
            logging.ERROR,
            "Health check 'dependency' failed with an exception",
            True,
        )
        for _ in range(2):  # each time after the interval: a reminder naming the error, no traceback
            await asyncio.sleep(0.25)
            assert (await checks.run()).outcomes[0].status_code == 500
            tracebacks.clear()
            ((level, message, traceback),) = above_debug()
            assert level == logging.WARNING and not traceback
            assert tracebacks, "the traceback is still logged, at DEBUG"
            assert message.startswith(
                "Health check 'dependency' failed with an exception again, the same ConnectionRefusedError as before"
                " (traceback at DEBUG): "
            ), message
        assert (await checks.run()).outcomes[0].status_code == 500  # within the interval: DEBUG only
        assert above_debug() == []
        dependency.broken = True  # another exception: a new traceback
        await asyncio.sleep(0.25)
        assert (await checks.run()).outcomes[0].status_code == 500
        ((level, message, traceback),) = above_debug()
        assert (level, traceback) == (logging.ERROR, True)
        assert message == (
            "Health check 'dependency' failed with an exception"
            " (and 1 failing run(s) since the last such line, logged at DEBUG)"
        )
        with socket.create_server(("127.0.0.1", dependency.port)):
            dependency.broken = False
            assert (await checks.run()).outcomes[0].status_code == 200
            assert [line[1] for line in above_debug()] == [
                "Health check 'dependency' is healthy again (0 failing run(s) not logged)"
            ]
            dependency.broken = True  # a new streak: its first exception has its traceback again
            assert (await checks.run()).outcomes[0].status_code == 500
            assert [(line[0], line[2]) for line in above_debug()] == [(logging.ERROR, True)]
