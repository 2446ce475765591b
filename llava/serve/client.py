"""A small synchronous client for the controller and the workers (used by the web server and the tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from llava.serve.protocol import ErrorCode, iter_chunks


class ServeError(RuntimeError):
    """A request the serving stack refused or could not answer; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def worker_lost_chunk(text: str, cause: str) -> dict[str, Any]:
    """The last chunk of a stream whose worker went away mid-answer: the worker's own failure shape, so that
    a client handles it like any failed generation (`cause`: what broke, e.g. the exception's class name)."""
    return {
        "text": text,
        "error_code": ErrorCode.WORKER_LOST,
        "error": f"the model worker stopped in the middle of the answer ({cause}); please ask again",
        "finished": True,
    }


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return detail if isinstance(detail, str) else (json.dumps(detail) if detail else response.text[:500])


def _post(url: str, payload: dict | None = None, timeout: float = 10) -> dict:
    try:
        response = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServeError(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise ServeError(_detail(response), response.status_code)
    return response.json()


def list_models(controller: str, refresh: bool = False) -> list[str]:
    """Models the controller's live workers serve (`refresh`: ask every worker first, dropping dead ones)."""
    if refresh:
        _post(f"{controller}/refresh_all_workers")
    return _post(f"{controller}/list_models")["models"]


def get_worker_address(controller: str, model: str) -> str:
    """The worker to use for `model`, "" when none serves it."""
    return _post(f"{controller}/get_worker_address", {"model": model})["address"]


def model_details(address: str) -> dict[str, Any]:
    """A worker's /model_details: depth, image tokens, DART defaults, limits."""
    return _post(f"{address}/model_details")


def stream_generate(address: str, payload: dict[str, Any], timeout: float = 120) -> Iterator[dict[str, Any]]:
    """POST to `address`/worker_generate_stream (a worker, or the controller, which forwards) and yield the
    NDJSON chunks. ServeError on a refusal (with the server's message) or a connection lost before any chunk;
    a stream that breaks off after some chunks ends with a `worker_lost_chunk` (error_code WORKER_LOST), as the
    controller ends one, so that the caller shows the error like any failed generation."""
    url = f"{address}/worker_generate_stream"
    last: dict[str, Any] | None = None
    try:
        with httpx.stream("POST", url, json=payload, timeout=httpx.Timeout(10, read=timeout)) as response:
            if response.status_code != 200:
                response.read()
                raise ServeError(_detail(response), response.status_code)
            for last in iter_chunks(response.iter_lines()):
                yield last
    except httpx.HTTPError as exc:
        if last is None:  # nothing arrived: the caller may still send the request elsewhere
            raise ServeError(f"lost the connection to {address}: {exc}") from None
        if not last.get("finished"):
            yield worker_lost_chunk(last.get("text") or "", exc.__class__.__name__)
