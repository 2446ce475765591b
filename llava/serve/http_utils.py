"""Pieces the controller and the model worker share: a JSON-only FastAPI app whose request bodies are
bounded and unambiguous, 4xx for bad requests, capped reads of other servers' answers, and running an app
under uvicorn."""

from __future__ import annotations

from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from llava.serve.protocol import BadJson, loads_json, validation_message

JSON_MEDIA_TYPE = "application/json"


def framing_problem(headers: list[tuple[bytes, bytes]], max_bytes: int) -> tuple[int, str] | None:
    """(status, reason) when a request's framing headers are refused: Content-Length together with
    Transfer-Encoding (a server and a proxy may disagree on where such a body ends, and the limit would count
    the wrong one), more than one Content-Length, a chunked body (its size is unknown up front), a length
    that is not a number or is over `max_bytes`."""
    lengths = [value for name, value in headers if name == b"content-length"]
    chunked = any(name == b"transfer-encoding" for name, _ in headers)
    if lengths and chunked:
        return 400, "the request has both Content-Length and Transfer-Encoding headers (ambiguous framing)"
    if len(lengths) > 1:
        return 400, "the request has more than one Content-Length header"
    if chunked:
        return 411, "a Content-Length header is required (chunked request bodies are not accepted)"
    if lengths and not lengths[0].isdigit():
        return 400, "the Content-Length header is not a number"
    if lengths and int(lengths[0]) > max_bytes:
        return 413, f"the request body is {int(lengths[0])} bytes, more than the limit of {max_bytes}"
    return None


def content_type_problem(headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """(415, reason) unless the body is declared JSON. A browser sends text/plain, form and multipart bodies
    (or none of the header) cross-site without asking first; application/json it may not."""
    declared = next((value for name, value in headers if name == b"content-type"), b"")
    media_type = declared.split(b";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE.encode():
        return 415, f"send the body as JSON, with Content-Type: {JSON_MEDIA_TYPE}"
    return None


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-length" and value != b"0" for name, value in headers)


class RequestGuard:
    """ASGI middleware: a request body is JSON (415 if not declared so), framed by one Content-Length (400 /
    411 otherwise) and at most `max_bytes` long (413), counted as the bytes arrive, not only as announced.
    The body is read here, up to the limit, and handed on to the app whole."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        problem = framing_problem(headers, self.max_bytes)
        if problem is None and _declares_body(headers):
            problem = content_type_problem(headers)
        if problem is None and _declares_body(headers):
            body = await self._read_body(receive)
            if body is None:
                problem = 413, f"the request body is more than the limit of {self.max_bytes} bytes"
            else:
                receive = _replay(body, receive)
        if problem is not None:
            await JSONResponse({"detail": problem[1]}, status_code=problem[0])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _read_body(self, receive) -> bytes | None:
        """The whole body, or None as soon as more than `max_bytes` arrived."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return bytes(body)
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return bytes(body)


def _replay(body: bytes, receive):
    """A `receive` that gives the app `body` first, then the connection's own messages (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


class StrictJsonRequest(Request):
    """A request whose JSON body is parsed strictly: 400 for anything `loads_json` refuses."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads_json(await self.body())
            except BadJson as exc:
                raise HTTPException(400, f"the body is {exc}") from None
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict_handler(request: Request):
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def json_api(title: str, max_body_bytes: int, **kwargs) -> FastAPI:
    """A FastAPI app that takes only bounded, strictly parsed JSON bodies and answers bad ones with a 4xx
    naming the problem. Add its routes after this call (they get the strict route class)."""
    app = FastAPI(title=title, **kwargs)
    app.router.route_class = StrictJsonRoute
    app.add_middleware(RequestGuard, max_bytes=max_body_bytes)
    readable_validation_errors(app)
    return app


def readable_validation_errors(app: FastAPI) -> None:
    """422 answers whose `detail` is one line naming each bad field (FastAPI's list stays under `errors`)."""

    @app.exception_handler(RequestValidationError)
    async def _handler(request: Request, exc: RequestValidationError):  # noqa: ARG001 (FastAPI's signature)
        errors = exc.errors()
        listed = [{"loc": e.get("loc"), "msg": e.get("msg")} for e in errors]
        return JSONResponse({"detail": validation_message(errors), "errors": listed}, status_code=422)


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """A streamed response's body, or None as soon as it runs past `max_bytes` (the rest is never read)."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > max_bytes:
            return None
    return bytes(body)


def run_app(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted. uvicorn's access log is off: one line per streamed token chunk is noise."""
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
