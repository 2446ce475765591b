"""A small synchronous client for the controller and the workers (used by the web server and the tests).

What comes back is read within limits and checked before a caller uses it: answers at most
MAX_ANSWER_BYTES, stream lines at most MAX_STREAM_LINE_BYTES, every chunk a `StreamChunk`
(`llava.serve.protocol`). Error messages name the server's role, not its address (they reach users).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from pydantic import ValidationError

from llava.serve.protocol import (
    MAX_STREAM_LINE_BYTES,
    BadChunk,
    BadJson,
    ErrorCode,
    ModelDetails,
    loads_json,
    parse_stream_chunk,
    validation_message,
)

MAX_ANSWER_BYTES = 1024 * 1024  # a model list, an address, a worker's /model_details


class ServeError(RuntimeError):
    """A request the serving stack refused or could not answer; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BadReply(ServeError):
    """An answer that is not what the protocol says (not JSON, too long, fields missing or out of range)."""

    def __init__(self, role: str, reason: str):
        super().__init__(f"the {role} sent a reply that cannot be used ({reason[:300]}); please ask again", 502)


def worker_lost_chunk(text: str, cause: str) -> dict[str, Any]:
    """The last chunk of a stream whose worker went away mid-answer: the worker's own failure shape, so that
    a client handles it like any failed generation (`cause`: what broke, e.g. the exception's class name)."""
    return {
        "text": text,
        "error_code": ErrorCode.WORKER_LOST,
        "error": f"the model worker stopped in the middle of the answer ({cause}); please ask again",
        "finished": True,
    }


def bad_reply_chunk(text: Any) -> dict[str, Any]:
    """The last chunk of a stream that the controller ended because the worker sent something unusable."""
    return {
        "text": text if isinstance(text, str) else "",
        "error_code": ErrorCode.BAD_REPLY,
        "error": "the model worker sent a reply that cannot be used; please ask again",
        "finished": True,
    }


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """A streamed response's body, or None as soon as it runs past `max_bytes`."""
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > max_bytes:
            return None
    return bytes(body)


def _detail(body: bytes) -> str:
    """The `detail` of a refusal, as one line of text."""
    try:
        detail = loads_json(body).get("detail")
    except (BadJson, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail
    return json.dumps(detail) if detail else body[:500].decode(errors="replace")


def _post(url: str, role: str, payload: dict | None = None, timeout: float = 10) -> Any:
    """POST and return the JSON answer; ServeError naming `role` (e.g. "controller") when it fails."""
    try:
        with httpx.stream("POST", url, json=payload, timeout=timeout) as response:
            body = _read_capped(response, MAX_ANSWER_BYTES)
            status = response.status_code
    except httpx.HTTPError as exc:
        raise ServeError(f"cannot reach the {role} ({exc.__class__.__name__}: {exc})") from None
    if body is None:
        raise BadReply(role, f"an answer longer than {MAX_ANSWER_BYTES} bytes")
    if status != 200:
        raise ServeError(_detail(body), status)
    try:
        return loads_json(body)
    except BadJson as exc:
        raise BadReply(role, f"an answer that is {exc}") from None


def _field(answer: Any, name: str, kind: type, role: str):
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, kind):
        raise BadReply(role, f"`{name}` is missing or not a {kind.__name__}")
    return value


def list_models(controller: str, refresh: bool = False) -> list[str]:
    """Models the controller's live workers serve (`refresh`: ask every worker first, dropping dead ones)."""
    if refresh:
        _post(f"{controller}/refresh_all_workers", "controller")
    models = _field(_post(f"{controller}/list_models", "controller"), "models", list, "controller")
    if not all(isinstance(model, str) for model in models):
        raise BadReply("controller", "`models` is not a list of names")
    return models


def get_worker_address(controller: str, model: str) -> str:
    """The worker to use for `model`, "" when none serves it."""
    return _field(_post(f"{controller}/get_worker_address", "controller", {"model": model}), "address", str,
                  "controller")


def model_details(address: str) -> dict[str, Any]:
    """A worker's /model_details: depth, image tokens, DART defaults, limits (checked)."""
    try:
        return ModelDetails.model_validate(_post(f"{address}/model_details", "model worker")).model_dump()
    except ValidationError as exc:
        raise BadReply("model worker", validation_message(exc.errors())) from None


def bounded_lines(pieces: Iterable[bytes], max_line_bytes: int = MAX_STREAM_LINE_BYTES) -> Iterator[bytes]:
    """Lines of a byte stream (without their newline; a last line without one too), refusing with BadChunk
    any line longer than `max_line_bytes` before it is held whole."""
    pending = b""
    for piece in pieces:
        *complete, pending = (pending + piece).split(b"\n")
        yield from complete
        if len(pending) > max_line_bytes:
            raise BadChunk(f"a line is longer than {max_line_bytes} bytes")
    if pending:
        yield pending


def _chunks(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The checked chunks of a streamed generation; blank lines are skipped."""
    for line in bounded_lines(response.iter_bytes()):
        if line.strip():
            yield parse_stream_chunk(line)


def stream_generate(address: str, payload: dict[str, Any], timeout: float = 120) -> Iterator[dict[str, Any]]:
    """POST to `address`/worker_generate_stream (a worker, or the controller, which forwards) and yield the
    checked NDJSON chunks. ServeError on a refusal (with the server's message) or a connection lost before
    any chunk; BadReply for a line that is not a chunk; a stream that breaks off after some chunks ends with
    a `worker_lost_chunk` (error_code WORKER_LOST), as the controller ends one, so that the caller shows the
    error like any failed generation."""
    url = f"{address}/worker_generate_stream"
    last: dict[str, Any] | None = None
    try:
        with httpx.stream("POST", url, json=payload, timeout=httpx.Timeout(10, read=timeout)) as response:
            if response.status_code != 200:
                body = _read_capped(response, MAX_ANSWER_BYTES)
                if body is None:
                    raise BadReply("model worker", f"a refusal (HTTP {response.status_code}) too long to read")
                raise ServeError(_detail(body), response.status_code)
            for last in _chunks(response):
                yield last
    except BadChunk as exc:
        raise BadReply("model worker", str(exc)) from None
    except httpx.HTTPError as exc:
        if last is None:  # nothing arrived: the caller may still send the request elsewhere
            raise ServeError(f"lost the connection to the model worker ({exc.__class__.__name__}: {exc})") from None
        if not last.get("finished"):
            yield worker_lost_chunk(last.get("text") or "", exc.__class__.__name__)
