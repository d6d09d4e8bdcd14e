"""`redact_url`: the toolkit's one URL-password redaction helper."""

from __future__ import annotations

import pytest

from c2c_config import redact_url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("http://u:pw@h/", "http://u:***@h/"),
        ("https://u:p@ss@h/", "https://u:***@h/"),  # an unencoded @ in the password
        ("postgresql+asyncpg://app:pw@db/app is down", "postgresql+asyncpg://app:***@db/app is down"),
        ("http://u@h/", "http://u@h/"),  # no password
        ("http://h/p?next=a:b", "http://h/p?next=a:b"),
        ("http://:@0?a=@", "http://:***@0?a=@"),  # the authority ends at '?': the '@' after is the query's
        ("http://u:p@h#x@y", "http://u:***@h#x@y"),
        ("http://h?u:p@x", "http://h?u:p@x"),  # no credentials: 'u:p@' is in the query
        (
            "cannot reach redis://:a@h1:6379 nor rediss://u:b@c@h2/0; mail admin@example.com",
            "cannot reach redis://:***@h1:6379 nor rediss://u:***@h2/0; mail admin@example.com",
        ),
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown
