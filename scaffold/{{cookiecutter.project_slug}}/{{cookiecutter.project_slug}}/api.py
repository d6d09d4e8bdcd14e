"""The service's API: add your routes here (mounted under `<route prefix>api`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

router = APIRouter(tags=["api"])


class Greeting(BaseModel):
    """The answer of `GET /api/hello`."""

    message: str


@router.get("/hello")
async def hello(name: Annotated[str, Query(max_length=100)] = "world") -> Greeting:
    """Say hello."""
    return Greeting(message=f"Hello, {name}!")
