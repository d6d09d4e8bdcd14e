"""Helpers the c2c-all tests share (importable: conftest puts this folder on sys.path)."""

from __future__ import annotations

import os

import pytest


def clear_c2c_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every `C2C__` environment variable for this test (monkeypatch puts them back after it)."""
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
