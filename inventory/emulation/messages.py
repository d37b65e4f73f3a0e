"""What an emulated API receives and answers: one HTTP request and its response."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Request:
    """One HTTP request as received: the query string and body are left exactly as sent,
    because a signature check must see the bytes the client signed."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # drop the connection instead of answering
    cut: bool = False  # announce the whole body, send half of it, then hang up

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        # A lone surrogate (a test's poison value) goes out as the escape \ud800, as JSON has it.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return cls(status, body.encode(errors="backslashreplace"), headers=dict(headers))

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), f"{content_type}; charset=utf-8")

    @classmethod
    def html(cls, status: int, title: str) -> Response:
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return cls.text(status, page, "text/html")
