"""`decorate()`: turn a function into one that runs on every replica, with typed arguments and answers."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from pydantic import TypeAdapter

from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer

LOG = logging.getLogger("c2c_broadcast")

POSITIONAL_ERROR = "{name}() runs on every replica through broadcast: call it with keyword arguments only"

BroadcastFunc = Callable[..., Awaitable[list[BroadcastResponse[Any] | MissingAnswer] | None]]


def default_channel(func: Callable[..., Any]) -> str:
    """`c2c_decorated_<module>.<qualified name>`."""
    return f"c2c_decorated_{func.__module__}.{func.__qualname__}"


def _is_model(hint: Any) -> bool:
    """Whether a hint is a pydantic model class: the hints c2casgiutils 0.14 validated (strictly)."""
    return isinstance(hint, type) and issubclass(hint, pydantic.BaseModel)


def _adapter(hint: Any) -> TypeAdapter[Any] | None:
    if hint is Any or hint is inspect.Parameter.empty:
        return None
    try:
        return TypeAdapter(hint)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        return None  # an arbitrary class: passed through as received


class Decorated:
    """The pieces `decorate()` builds: the receiving handler and the calling wrapper."""

    def __init__(self, func: Callable[..., Any], channel: str, expect_answers: bool, timeout: float | None) -> None:
        self.func = func
        self.channel = channel
        self.expect_answers = expect_answers
        self.timeout = timeout
        self.signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception as error:  # NameError for an unresolvable forward reference, ...
            raise TypeError(f"cannot decorate {func.__qualname__}: its type hints do not resolve ({error})") from error
        self.param_adapters = {
            name: adapter
            for name, hint in hints.items()
            if name != "return" and name in self.signature.parameters and (adapter := _adapter(hint)) is not None
        }
        self.return_adapter = _adapter(hints["return"]) if "return" in hints else None
        # Only a pydantic model hint is strict (0.14 validated those alone): a value that does not
        # fit any other hint is passed as it came, with one WARNING, so that a handler whose hints
        # are loose (`-> bool` returning None, `source: str` given a number) runs as it did on 0.14.
        self.model_params = {name for name, hint in hints.items() if name != "return" and _is_model(hint)}
        self.model_return = _is_model(hints.get("return"))
        self.is_async = inspect.iscoroutinefunction(func)
        self._warned: set[str] = set()

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        if what not in self._warned:
            self._warned.add(what)
            LOG.warning(message + " (said once per process)", *args)

    def _argument(self, name: str, value: Any) -> Any:
        adapter = self.param_adapters.get(name)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError as error:
            if name in self.model_params:
                raise
            self._warn_once(
                f"argument {name}",
                "Broadcast %r: argument %r does not fit its type hint, passed as received"
                " (as c2casgiutils 0.14 did): %s",
                self.channel,
                name,
                _one_line(error),
            )
            return value

    async def handler(self, **kwargs: Any) -> Any:
        """What runs on each replica: validate the arguments from the type hints (strictly for pydantic
        models, else falling back to the value as received), call, return the result."""
        arguments = {name: self._argument(name, value) for name, value in kwargs.items()}
        if self.is_async:
            result = await self.func(**arguments)
        else:
            # A sync function may block: run it in a thread, the event loop keeps serving.
            result = await asyncio.to_thread(functools.partial(self.func, **arguments))
        if inspect.isawaitable(result):
            result = await result
        return result

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Refuse positional arguments and arguments the function does not accept, before sending anything."""
        name = getattr(self.func, "__qualname__", repr(self.func))
        if args:
            raise TypeError(POSITIONAL_ERROR.format(name=name))
        try:
            self.signature.bind(**kwargs)
        except TypeError as error:
            raise TypeError(f"{name}(): {error}") from None

    def validate_answers(
        self, answers: list[BroadcastResponse[Any] | MissingAnswer]
    ) -> list[BroadcastResponse[Any] | MissingAnswer]:
        """Validate payloads against the return annotation. One that does not fit a pydantic model
        annotation becomes an `ErrorAnswer`; any other annotation: the payload as received (WARNING)."""
        if self.return_adapter is None:
            return answers
        results: list[BroadcastResponse[Any] | MissingAnswer] = []
        for item in answers:
            if not isinstance(item, BroadcastResponse):
                results.append(item)
                continue
            try:
                payload = self.return_adapter.validate_python(item.payload)
            except pydantic.ValidationError as error:
                if not self.model_return:
                    self._warn_once(
                        "return",
                        "Broadcast %r: an answer does not fit the return annotation, returned as received"
                        " (as c2casgiutils 0.14 did): %s",
                        self.channel,
                        _one_line(error),
                    )
                    results.append(item)
                    continue
                LOG.error(
                    "Broadcast %r: the answer of %s (pid %d) does not match the return type: %s",
                    self.channel,
                    item.hostname,
                    item.pid,
                    error,
                )
                results.append(
                    ErrorAnswer(hostname=item.hostname, pid=item.pid, error_type="ValidationError", message=str(error))
                )
                continue
            results.append(BroadcastResponse(hostname=item.hostname, pid=item.pid, payload=payload))
        return results


def _one_line(error: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, item['loc'])) or 'value'}: {item['msg']}" for item in error.errors())[:300]
