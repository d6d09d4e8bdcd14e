"""One line describing an error, for logs, health payloads and findings."""

from __future__ import annotations

import re

from c2c_config._base import redact_url

_CLIENT_REPR = "<redis."
_ADDRESS = re.compile(r"\bhost=([^,()<>\s]+),\s*port=(\d+)")


def _without_client_reprs(text: str) -> str:
    """`text` with each redis-py object repr (`<redis.asyncio.client.Redis(<...ConnectionPool(<...
    Connection(host=h,port=p,...)>)>)>`, some 1,500 characters) replaced by the address it connects
    to (`h:p`), or by `<redis client>` when it names none. redis-py puts such reprs in its Sentinel
    errors (`No master found for 'mymaster' : <redis...> - ConnectionError...`)."""
    if _CLIENT_REPR not in text:
        return text
    parts: list[str] = []
    start = 0
    while (begin := text.find(_CLIENT_REPR, start)) != -1:
        parts.append(text[start:begin])
        depth = 0
        end = begin
        while end < len(text):
            if text[end] == "<":
                depth += 1
            elif text[end] == ">":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        if depth != 0:  # unbalanced: a cut text; drop the rest of the repr
            parts.append("<redis client>")
            return "".join(parts)
        address = _ADDRESS.search(text, begin, end)
        parts.append(f"{address[1]}:{address[2]}" if address is not None else "<redis client>")
        start = end + 1
    parts.append(text[start:])
    return "".join(parts)


def describe_error(error: BaseException, *, limit: int | None = None) -> str:
    """`Type: message` in one line (the type alone when the error has no message), for a log line, a
    health payload or a finding; never raises.

    The credentials of URLs are hidden (`redact_url`), redis-py's object reprs (its Sentinel errors
    hold one per Sentinel asked, some 1,500 characters each) are replaced by the address they
    connect to, line breaks become spaces, and the text is cut to `limit` characters (ending with
    `…`) when one is given.
    """
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not break the report of the error
        message = ""
    text = f"{type(error).__name__}: {message}" if message.strip() else type(error).__name__
    text = " ".join(redact_url(_without_client_reprs(text)).split())
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


__all__ = ["describe_error"]
