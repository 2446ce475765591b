"""Pieces the controller and the model worker share: request-size limit, 4xx for bad requests, and running
a FastAPI app under uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from llava.serve.protocol import validation_message

class BodySizeLimit:
    """ASGI middleware: a request body must announce its size in Content-Length and stay under `max_bytes`
    (413 if not), so an oversized upload is refused before it is read into memory. A chunked body, whose
    size is unknown up front, gets 411; a request with neither header has no body and passes."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            problem = None
            if length is None:
                if b"transfer-encoding" in headers:
                    problem = (411, "a Content-Length header is required (chunked request bodies are not accepted)")
            elif not length.isdigit():
                problem = (400, "the Content-Length header is not a number")
            elif int(length) > self.max_bytes:
                problem = (413, f"the request body is {int(length)} bytes, more than the limit of {self.max_bytes}")
            if problem is not None:
                response = JSONResponse({"detail": problem[1]}, status_code=problem[0])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def readable_validation_errors(app: FastAPI) -> None:
    """422 answers whose `detail` is one line naming each bad field (FastAPI's list stays under `errors`)."""

    @app.exception_handler(RequestValidationError)
    async def _handler(request: Request, exc: RequestValidationError):  # noqa: ARG001 (FastAPI's signature)
        errors = exc.errors()
        listed = [{"loc": e.get("loc"), "msg": e.get("msg")} for e in errors]
        return JSONResponse({"detail": validation_message(errors), "errors": listed}, status_code=422)


def run_app(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted. uvicorn's access log is off: one line per streamed token chunk is noise."""
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)
