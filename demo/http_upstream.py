"""An upstream service posting to ``oncepipe ingest``, with the retry recipe it documents.

The recipe (README "HTTP ingest"): one Idempotency-Key per logical request, drawn once and
sent on EVERY retry; retry connection errors, timeouts, 408, 409, 429 and 5xx with exponential
backoff and full jitter (at least ``Retry-After`` when the server gives one); never retry
other 4xx (fix the request instead). A lost response then costs a retry, never a second event.

``naive`` posts without a key to the server's ``/naive`` endpoint, retrying the same way: the
failure the story began with, for comparison.

Public names: ``HttpUpstream``, ``HttpResult``, ``RETRYABLE``.
"""

from __future__ import annotations

import http.client
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

__all__ = ["RETRYABLE", "HttpResult", "HttpUpstream"]

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})


class _TransientError(Exception):
    """A failure worth retrying with the same key; ``retry_after`` from the server, if any."""

    def __init__(self, why: str, retry_after: float = 0.0) -> None:
        super().__init__(why)
        self.retry_after = retry_after


@dataclass
class HttpResult:
    """How one logical request went."""

    status: int
    attempts: int
    event_ids: list[str]
    replayed: bool


class HttpUpstream:
    """Posts events to an ingest server, retrying transient failures with the same key."""

    def __init__(
        self, url: str, api_key: str, *, naive: bool = False, give_up_after_s: float = 120.0
    ) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._prefix = "/naive" if naive else ""
        self._api_key = api_key
        self._naive = naive
        self._give_up_after_s = give_up_after_s

    def post(self, event_type: str, body: Any, key: str) -> HttpResult:
        """POST one event; returns once the server answered something final."""
        payload = json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
            "Connection": "close",  # one connection per request: a lost answer is per request
        }
        if not self._naive:
            headers["Idempotency-Key"] = key  # the same on every retry: that is the recipe
        path = f"{self._prefix}/v1/events/{event_type}"
        attempts = 0
        retrying = Retrying(
            retry=retry_if_exception_type(_TransientError),
            wait=_backoff,
            stop=stop_after_delay(self._give_up_after_s),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                attempts += 1
                status, answer, replayed = self._once(path, payload, headers)
        return HttpResult(status, attempts, answer.get("event_ids", []), replayed)

    def _once(
        self, path: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], bool]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            conn.request("POST", path, payload, headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        if response.status in RETRYABLE:
            after = response.getheader("Retry-After") or "0"
            raise _TransientError(
                f"HTTP {response.status}", float(after) if after.isdigit() else 0.0
            )
        answer = json.loads(raw) if raw else {}
        return response.status, answer, response.getheader("Idempotent-Replayed") == "true"


_jitter = wait_random_exponential(multiplier=0.02, max=2.0)


def _backoff(state: Any) -> float:
    """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    floor = error.retry_after if isinstance(error, _TransientError) else 0.0
    return max(float(_jitter(state)), floor * (1 + random.random() / 10))  # noqa: S311
