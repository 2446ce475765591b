r"""The controller: model workers register here, send heartbeats, and clients ask it which worker to use.

    LLAVA_WORKER_SECRET=... python -m llava.serve.controller [--host 127.0.0.1] [--port 10000] \
        [--dispatch-method shortest_queue] [--worker-secret-file FILE]

Endpoints (POST, JSON; names as in LLaVA):
    /register_worker      {worker_name, check_heart_beat, worker_status?}  (status fetched from the worker if absent)
    /receive_heart_beat   {worker_name, queue_length} -> {exist}; exist=false tells the worker to register again
                          (both only with the worker secret: `Authorization: Bearer SECRET`, else 401)
    /refresh_all_workers  re-reads every worker's status, dropping those that do not answer
    /list_models          -> {models}
    /get_worker_address   {model} -> {address}; "" when no worker serves the model (as LLaVA)
    /worker_get_status    -> {model_names, speed, queue_length} summed over all workers
    /worker_generate_stream  forwards a generation to a worker (same body and NDJSON stream as the worker's
                          endpoint); a worker that cannot be reached is removed and the request goes to the
                          next one; 503 with the reason when none is left. A worker whose stream breaks off
                          mid-answer is removed and the stream ends with an error chunk
                          {"text": so far, "error_code": 2 (WORKER_LOST), "error", "finished": true}

Workers: whoever registers receives users' prompts and images, so registrations and heartbeats need the
secret shared with the workers (LLAVA_WORKER_SECRET or `--worker-secret-file`; without either the
controller generates one into a private file and logs where, see `llava.serve.worker_auth`). A worker's
address must be a plain http(s) base URL, and its status finite and bounded (`llava.serve.protocol`).
Workers whose last heartbeat (or registration) is older than `--heart-beat-expiration` seconds are removed,
whatever `check_heart_beat` said (LLaVA let `false` keep a worker forever).
Dispatch: `shortest_queue` picks the worker with the smallest queue_length / speed (and counts the request
against it until its next heartbeat); `lottery` picks at random, weighted by speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import logging
import random
import signal
import sys
import time
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from llava.constants import CONTROLLER_HEART_BEAT_EXPIRATION
from llava.serve import DEFAULT_CONTROLLER_PORT, DEFAULT_HOST, configure_logging
from llava.serve.client import bad_reply_chunk, worker_lost_chunk
from llava.serve.http_utils import json_api, read_capped, run_app
from llava.serve.protocol import (
    MAX_STREAM_LINE_BYTES,
    NDJSON_MEDIA_TYPE,
    BadJson,
    HeartBeatRequest,
    ModelRequest,
    RegisterWorkerRequest,
    WorkerStatus,
    encode_chunk,
    loads_json,
    validation_message,
)
from llava.serve.worker_auth import (
    SECRET_ENV,
    SecretError,
    new_secret,
    presents_secret,
    read_secret,
    remove_private_secret,
    write_private_secret,
)

logger = logging.getLogger("llava.serve.controller")

# A generation request carries base64 images: allow a few of the workers' 10 MiB images.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
# What the controller reads of a worker's own answers: its status, and a refusal it relays to the client.
MAX_WORKER_ANSWER_BYTES = 64 * 1024


class DispatchMethod(str, enum.Enum):
    LOTTERY = "lottery"
    SHORTEST_QUEUE = "shortest_queue"


@dataclasses.dataclass
class WorkerInfo:
    model_names: list[str]
    speed: float
    queue_length: int
    last_heart_beat: float


class Controller:
    """The worker registry. Used from the event loop only, so it needs no locks."""

    def __init__(self, dispatch_method: DispatchMethod, heart_beat_expiration: float, client: httpx.AsyncClient,
                 rng: random.Random | None = None):
        self.dispatch_method = DispatchMethod(dispatch_method)
        self.heart_beat_expiration = heart_beat_expiration
        self.client = client
        self.rng = rng or random.Random()
        self.workers: dict[str, WorkerInfo] = {}

    async def fetch_worker_status(self, worker_name: str) -> WorkerStatus | None:
        try:
            async with self.client.stream("POST", f"{worker_name}/worker_get_status", timeout=5) as response:
                response.raise_for_status()
                body = await read_capped(response, MAX_WORKER_ANSWER_BYTES)
            if body is None:
                raise ValueError(f"its status is longer than {MAX_WORKER_ANSWER_BYTES} bytes")
            return WorkerStatus.model_validate(loads_json(body))
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cannot get the status of worker %s: %s", worker_name, exc)
            return None

    async def register_worker(self, worker_name: str, status: WorkerStatus | None) -> bool:
        """Register (or re-register) a worker; its heartbeat clock starts now."""
        if status is None:
            status = await self.fetch_worker_status(worker_name)
            if status is None:
                return False
        known = worker_name in self.workers
        self.workers[worker_name] = WorkerInfo(status.model_names, status.speed, status.queue_length, time.monotonic())
        if not known:
            logger.info("registered worker %s serving %s", worker_name, status.model_names)
        return True

    def remove_worker(self, worker_name: str, reason: str) -> None:
        if self.workers.pop(worker_name, None) is not None:
            logger.info("removed worker %s: %s", worker_name, reason)

    async def refresh_all_workers(self) -> None:
        """Re-read every worker's status, dropping those that do not answer. Anyone may ask for this, so it
        does not count as a heartbeat: only the worker's own heartbeats keep it registered."""
        for name in list(self.workers):
            status = await self.fetch_worker_status(name)
            info = self.workers.get(name)
            if info is None:  # removed while we waited
                continue
            if status is None:
                self.remove_worker(name, "it does not answer /worker_get_status")
            else:
                info.model_names, info.speed, info.queue_length = status.model_names, status.speed, status.queue_length

    def list_models(self) -> list[str]:
        return sorted({model for info in self.workers.values() for model in info.model_names})

    def receive_heart_beat(self, worker_name: str, queue_length: int) -> bool:
        info = self.workers.get(worker_name)
        if info is None:
            logger.info("heartbeat from unknown worker %s: asking it to register", worker_name)
            return False
        info.queue_length = queue_length
        info.last_heart_beat = time.monotonic()
        return True

    def remove_stale_workers(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        stale = [name for name, info in self.workers.items() if now - info.last_heart_beat > self.heart_beat_expiration]
        for name in stale:
            self.remove_worker(name, f"no heartbeat for more than {self.heart_beat_expiration:g} s")
        return stale

    def get_worker_address(self, model: str, exclude: set[str] = frozenset()) -> str:
        """The worker to send a `model` request to, or "" if none serves it."""
        candidates = [
            (name, info) for name, info in self.workers.items() if model in info.model_names and name not in exclude
        ]
        if not candidates:
            return ""
        if self.dispatch_method is DispatchMethod.LOTTERY:
            weights = [info.speed for _, info in candidates]
            return self.rng.choices([name for name, _ in candidates], weights=weights)[0]
        name, info = min(candidates, key=lambda item: item[1].queue_length / item[1].speed)
        info.queue_length += 1  # until the worker's next heartbeat says otherwise
        return name

    def aggregated_status(self) -> dict:
        return {
            "model_names": self.list_models(),
            "speed": sum(info.speed for info in self.workers.values()),
            "queue_length": sum(info.queue_length for info in self.workers.values()),
        }


def _worker_secret_check(secret: str):
    """A FastAPI dependency: 401 unless the request carries the worker secret."""

    async def check(authorization: str | None = Header(None)):
        if not presents_secret(authorization, secret):
            raise HTTPException(401, "only model workers may register or send heartbeats: send the controller's "
                                     "worker secret as 'Authorization: Bearer SECRET' (see docs/Serving.md)",
                                headers={"WWW-Authenticate": "Bearer"})

    return Depends(check)


def create_app(worker_secret: str, dispatch_method: DispatchMethod = DispatchMethod.SHORTEST_QUEUE,
               heart_beat_expiration: float = CONTROLLER_HEART_BEAT_EXPIRATION) -> FastAPI:
    state: dict[str, Controller] = {}
    workers_only = [_worker_secret_check(worker_secret)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            controller = Controller(dispatch_method, heart_beat_expiration, client)
            state["controller"] = controller
            sweeper = asyncio.create_task(_expire_workers(controller))
            try:
                yield
            finally:
                sweeper.cancel()

    app = json_api("LLaVA-DART controller", MAX_REQUEST_BYTES, lifespan=lifespan)

    @app.post("/register_worker", dependencies=workers_only)
    async def register_worker(request: RegisterWorkerRequest):
        controller = state["controller"]
        if not await controller.register_worker(request.worker_name, request.worker_status):
            raise HTTPException(502, f"could not reach worker {request.worker_name} for its status")
        return {"registered": True}

    @app.post("/receive_heart_beat", dependencies=workers_only)
    async def receive_heart_beat(request: HeartBeatRequest):
        return {"exist": state["controller"].receive_heart_beat(request.worker_name, request.queue_length)}

    @app.post("/refresh_all_workers")
    async def refresh_all_workers():
        await state["controller"].refresh_all_workers()
        return {"models": state["controller"].list_models()}

    @app.post("/list_models")
    async def list_models():
        return {"models": state["controller"].list_models()}

    @app.post("/list_workers")
    async def list_workers():
        return {"workers": {name: dataclasses.asdict(info) for name, info in state["controller"].workers.items()}}

    @app.post("/get_worker_address")
    async def get_worker_address(request: ModelRequest):
        return {"address": state["controller"].get_worker_address(request.model)}

    @app.post("/worker_get_status")
    async def worker_get_status():
        return state["controller"].aggregated_status()

    @app.post("/worker_generate_stream")
    async def worker_generate_stream(request: Request):
        return await _forward_generation(state["controller"], await request.body())

    return app


async def _expire_workers(controller: Controller) -> None:
    """Sweep often enough that a dead worker is gone within about 1.25 expiration intervals."""
    period = min(max(controller.heart_beat_expiration / 4, 0.1), 5.0)
    while True:
        await asyncio.sleep(period)
        controller.remove_stale_workers()


async def _forward_generation(controller: Controller, body: bytes) -> Response:
    """Send the request to a worker of its model; on a connection failure drop that worker and try the next."""
    try:
        model = ModelRequest.model_validate({"model": _model_field(body)}).model
    except BadJson as exc:
        return JSONResponse({"detail": f"the body is {exc}"}, status_code=400)
    except ValidationError as exc:
        return JSONResponse({"detail": validation_message(exc.errors())}, status_code=422)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    tried: set[str] = set()
    while True:
        address = controller.get_worker_address(model, exclude=tried)
        if not address:
            reason = "no live worker is left" if tried else "no worker is registered"
            return JSONResponse({"detail": f"cannot serve model {model!r}: {reason}"}, status_code=503)
        tried.add(address)
        upstream_request = controller.client.build_request(
            "POST", f"{address}/worker_generate_stream", content=body, headers={"content-type": "application/json"}
        )
        try:
            upstream = await controller.client.send(upstream_request, stream=True)
        except httpx.TransportError as exc:
            controller.remove_worker(address, f"unreachable ({exc.__class__.__name__})")
            continue
        if upstream.status_code != 200:
            try:
                return await _relayed_refusal(upstream)
            finally:
                await upstream.aclose()
        return StreamingResponse(_relay(controller, address, upstream), media_type=NDJSON_MEDIA_TYPE)


async def _relayed_refusal(upstream: httpx.Response) -> Response:
    """A worker's refusal (4xx / 5xx with a JSON body) passed on to the client, read no further than
    MAX_WORKER_ANSWER_BYTES; anything else becomes a 502 saying what the worker did."""
    status = upstream.status_code
    if not 400 <= status < 600:
        return _bad_gateway(f"the model worker answered HTTP {status} instead of a stream")
    try:
        body = await read_capped(upstream, MAX_WORKER_ANSWER_BYTES)
    except httpx.HTTPError as exc:
        return _bad_gateway(f"the model worker answered HTTP {status} and then broke off ({exc.__class__.__name__})")
    if body is None:
        return _bad_gateway(f"the model worker answered HTTP {status} with an error too long to relay")
    try:
        refusal = loads_json(body)
    except BadJson:
        return _bad_gateway(f"the model worker answered HTTP {status} with an error that is not JSON")
    return JSONResponse(refusal, status_code=status)


def _bad_gateway(detail: str) -> JSONResponse:
    logger.warning("%s", detail)
    return JSONResponse({"detail": detail}, status_code=502)


async def _relay(controller: Controller, address: str, upstream: httpx.Response):
    """Pass the worker's NDJSON lines through. If the worker's stream breaks off before its last chunk, end
    the client's stream with an error chunk and drop the worker at once: it died or cannot be read, and
    waiting for its heartbeats to go stale would send the next requests to it too."""
    pending = b""  # an incomplete line, held back so that a client never receives half a JSON object
    last_line = b""
    try:
        async for piece in upstream.aiter_raw():
            complete, newline, pending = (pending + piece).rpartition(b"\n")
            if newline:
                last_line = _last_nonblank_line(complete) or last_line
                yield complete + newline
            if len(pending) > MAX_STREAM_LINE_BYTES:
                logger.warning("worker %s sent a stream line longer than %d bytes; ending the stream",
                               address, MAX_STREAM_LINE_BYTES)
                yield encode_chunk(bad_reply_chunk(_parse_chunk(last_line).get("text")))
                return
        if pending:
            yield pending
    except httpx.TransportError as exc:
        last_chunk = _parse_chunk(last_line)
        if last_chunk.get("finished"):
            return  # the answer was complete; only the end of the response was lost
        # One line per broken stream, no traceback: the cause is known and the client is told.
        logger.warning("the stream from worker %s broke off mid-answer (%s: %s); dropping the worker",
                       address, exc.__class__.__name__, exc)
        controller.remove_worker(address, "its stream broke off mid-answer")
        yield encode_chunk(worker_lost_chunk(last_chunk.get("text") or "", exc.__class__.__name__))
    finally:
        await upstream.aclose()


def _last_nonblank_line(data: bytes) -> bytes:
    for line in reversed(data.split(b"\n")):
        if line.strip():
            return line
    return b""


def _parse_chunk(line: bytes) -> dict:
    """A relayed NDJSON line as a dict ({} when there is none or it is not a JSON object)."""
    try:
        chunk = loads_json(line) if line.strip() else {}
    except BadJson:
        return {}
    return chunk if isinstance(chunk, dict) else {}


def _model_field(body: bytes) -> object:
    """The request's `model`; BadJson for a body that is not JSON, ValueError when it names no model."""
    payload = loads_json(body)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError("the request must name the model")
    return payload["model"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LLaVA-DART controller")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_CONTROLLER_PORT)
    parser.add_argument("--dispatch-method", choices=[m.value for m in DispatchMethod], default="shortest_queue")
    parser.add_argument("--heart-beat-expiration", type=float, default=CONTROLLER_HEART_BEAT_EXPIRATION,
                        help="seconds without a heartbeat after which a worker is removed")
    parser.add_argument("--worker-secret-file", default=None,
                        help=f"file holding the secret workers must send (default: ${SECRET_ENV}; with neither, "
                             "one is generated into a private file whose path is logged)")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def _generated_secret() -> tuple[str, Path]:
    """A fresh secret in a file only this user can read; logs the file, never the secret itself."""
    secret = new_secret()
    path = write_private_secret(secret)
    logger.warning("no worker secret given (%s or --worker-secret-file): generated a worker secret; start the "
                   "workers with --worker-secret-file %s (or %s set to its contents)", SECRET_ENV, path, SECRET_ENV)
    return secret, path


def _exit_on_sigterm() -> None:
    """uvicorn stops gracefully on SIGTERM and then raises it again for the handler it found: exiting through
    Python there, not dying in the default handler, lets `finally` remove a generated secret."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        secret = read_secret(args.worker_secret_file)
    except SecretError as exc:
        logger.error("cannot start the controller: %s", exc)
        sys.exit(2)
    generated_file = None
    if secret is None:
        secret, generated_file = _generated_secret()
    logger.info("controller on http://%s:%d (dispatch %s, heartbeat expiration %g s)",
                args.host, args.port, args.dispatch_method, args.heart_beat_expiration)
    _exit_on_sigterm()
    try:
        run_app(create_app(secret, DispatchMethod(args.dispatch_method), args.heart_beat_expiration),
                args.host, args.port, args.log_level)
    finally:
        if generated_file is not None:
            remove_private_secret(generated_file)


if __name__ == "__main__":
    main()
