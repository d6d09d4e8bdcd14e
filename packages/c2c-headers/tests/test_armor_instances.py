"""`c2c_headers.armor.live_instances()`: the middleware instances alive in the process, weakly held."""

from __future__ import annotations

import gc

from c2c_headers.armor import ArmorHeaderMiddleware, live_instances
from c2c_headers.types import Receive, Scope, Send


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    del scope, receive, send


def test_live_instances_lists_each_instance_with_its_engine() -> None:
    first = ArmorHeaderMiddleware(_app, engine="python")
    second = ArmorHeaderMiddleware(_app, engine="python")
    found = [instance for instance in live_instances() if instance in (first, second)]
    assert len(found) == 2
    assert {instance.engine_name for instance in found} == {"python"}


def test_live_instances_does_not_keep_an_instance_alive() -> None:
    middleware = ArmorHeaderMiddleware(_app, engine="python")
    marker = id(middleware)
    assert marker in {id(instance) for instance in live_instances()}
    del middleware
    gc.collect()
    assert marker not in {id(instance) for instance in live_instances()}
