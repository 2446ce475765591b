r"""A model worker: loads one LLaVA or Qwen2-VL / Qwen2.5-VL checkpoint and streams answers, with DART pruning
per request.

    LLAVA_WORKER_SECRET=... python -m llava.serve.model_worker --controller-address http://127.0.0.1:10000 \
        --port 40000 --model-path PATH [--sparse --pruned_layer 2 --max_num_trunction 128 ...] \
        [--limit-model-concurrency 5] [--worker-secret-file FILE]

Endpoints (POST, JSON):
    /worker_generate_stream  a `GenerateRequest` (see `llava.serve.protocol`: a templated `prompt`, LLaVA only,
                             or `messages` put into the model's own template) -> NDJSON stream:
        {"text": answer so far, "error_code": 0}                                     per new piece of text
        {"text": answer, "error_code": 0, "finished": true, "finish_reason", "usage", "queue_seconds",
         "pruning": {"enabled", "pruned", "kept_image_tokens", "image_tokens", "kept_indices" (per image,
                     row-major indices into the image's grid; null where a method pooled or merged its tokens), "patch_grids" ([rows, cols] per image), "patch_grid",
                     "selection_seconds", "prefill_seconds", "config"}}
        a failure after streaming started ends the stream with {"error_code": 1, "error": ..., "finished": true}
        Bad requests are refused before streaming: 422 (fields: types, ranges, unknown names), 400 (not JSON,
        image not decodable, <image> count mismatch, prompt too long, invalid DART settings), 413 (too large),
        415 (a body not sent as application/json).
    /worker_get_status       {model_names, speed, queue_length}  queue_length = running + waiting requests
    /worker_get_concurrency  {limit_model_concurrency, running, waiting, queue_length}
    /model_details           {prompt_format, context_length, image_tokens, dart_defaults, limits, ...}

DART: `--sparse` and the DART flags set the worker's defaults; a request's `dart` object overrides any of
`sparse, pruned_layer, reduction_ratio, max_num_trunction, pivot_image_token, pivot_text_token,
pruning_method`, validated against the loaded model. Images arrive base64-encoded in the request; the
worker never opens a path a client sends.

Registering with the controller and its heartbeats carry the worker secret (LLAVA_WORKER_SECRET or
`--worker-secret-file`, see `llava.serve.worker_auth`); a worker that would register without one refuses to
start, before it loads its model.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import threading
import time
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from llava.constants import DEFAULT_IMAGE_TOKEN, DEFAULT_MODEL_PATH, WORKER_HEART_BEAT_INTERVAL
from llava.eval.core.pruning_args import add_pruning_args
from llava.mm_utils import get_model_name_from_path
from llava.model.families import PromptError, load_model
from llava.model.pruning import PruningConfigError, PruningInput, get_method, make_dart_config, parse_pruning_settings
from llava.pruning_settings import SETTINGS, SPARSE_FLAG, dart_config_values
from llava.serve import DEFAULT_CONTROLLER_PORT, DEFAULT_HOST, DEFAULT_WORKER_PORT, configure_logging
from llava.serve.http_utils import json_api, run_app
from llava.serve.inference import SamplingParams, StreamedGeneration, fit_to_context
from llava.serve.protocol import (
    NDJSON_MEDIA_TYPE,
    BadImage,
    ErrorCode,
    GenerateRequest,
    ImageLimits,
    decode_image,
    encode_chunk,
    worker_base_url,
)
from llava.serve.worker_auth import SECRET_ENV, SecretError, authorization_header, read_secret

logger = logging.getLogger("llava.serve.model_worker")

@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for; anything beyond is a 4xx."""

    images: ImageLimits = ImageLimits()
    max_prompt_chars: int = 16384
    max_new_tokens: int = 1024

    @property
    def max_body_bytes(self) -> int:
        # base64 grows 4/3; plus the prompt and a little JSON
        return self.images.max_images * ((self.images.max_bytes * 4) // 3 + 4) + 4 * self.max_prompt_chars + 65536


class ConcurrencySlots:
    """At most `limit` generations at once; the others wait in FIFO order (asyncio.Semaphore).

    Counts what LLaVA reports as queue_length (running + waiting) without reading the semaphore's private
    fields. Mutated on the event loop only; other threads just read the counters.
    """

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"--limit-model-concurrency must be >= 1, got {limit}")
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def queue_length(self) -> int:
        return self.running + self.waiting

    async def acquire(self) -> None:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._semaphore.release()


class ModelWorker:
    """The loaded model plus what the endpoints need: request checking, DART settings, concurrency."""

    def __init__(self, model_path: str, model_base: str | None = None, model_name: str | None = None,
                 device: str = "cuda", load_8bit: bool = False, load_4bit: bool = False,
                 attn_implementation: str | None = None, dart_defaults: dict[str, Any] | None = None,
                 limit_model_concurrency: int = 5, limits: RequestLimits = RequestLimits(),
                 conv_mode: str | None = None, min_pixels: int | None = None, max_pixels: int | None = None):
        self.model_name = model_name or get_model_name_from_path(model_path.rstrip("/"))
        logger.info("loading %s from %s", self.model_name, model_path)
        self.loaded = load_model(
            os.path.expanduser(model_path), model_base, model_name=self.model_name, load_8bit=load_8bit,
            load_4bit=load_4bit, device=device, attn_implementation=attn_implementation, min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        self.model, self.family = self.loaded.model, self.loaded.family
        # The template `messages` are put in (None: the model's own chat template).
        self.conv_mode = self.loaded.conv_mode(conv_mode, self.model_name)
        self.num_layers = self.model.config.get_text_config().num_hidden_layers
        self.dart_defaults = dict(dart_defaults or {"sparse": False})
        self.default_dart_config = self.resolve_dart({})  # fails at start-up on bad flags, not per request
        self.limits = limits
        self.slots = ConcurrencySlots(limit_model_concurrency)

    # -- settings and checks ---------------------------------------------------------------------------

    def resolve_dart(self, overrides: dict[str, Any]) -> dict[str, Any] | None:
        """The DART_config for a request: the worker's defaults updated by `overrides`; None = no pruning.

        It travels in the request's own PruningRecord (see StreamedGeneration), so requests with different
        settings run side by side; the worker never writes `model.config.DART_config`.

        Raises PruningConfigError (naming the setting) for values the model cannot use, e.g. K >= depth.
        """
        settings = {**self.dart_defaults, **overrides}
        if not settings.get("sparse"):
            return None
        raw = make_dart_config(**dart_config_values(settings))
        parsed = parse_pruning_settings(raw, self.num_layers)
        method = get_method(parsed.method)
        if method.before_llm and (not self.family.before_llm_methods or (
                not getattr(self.family, "vision_cls_attention", True)
                and PruningInput.VISION_CLS_ATTENTION in method.inputs)):
            raise PruningConfigError(f"DART_config['method']={parsed.method!r} reduces the image before the language "
                                     f"model, which {self.model.config.model_type} models do not support"
                                     + (" (their vision tower has no [CLS] token)" if self.family.before_llm_methods
                                        else " yet"))
        refused = getattr(self.family, "refused_methods", {})
        if parsed.method in refused:
            raise PruningConfigError(f"DART_config['method']={parsed.method!r} does not run on "
                                     f"{self.model.config.model_type} models: {refused[parsed.method]}")
        return parsed.to_dict()

    def prepare(self, request: GenerateRequest) -> tuple[StreamedGeneration, dict[str, Any]]:
        """Check everything about the request before anything streams; HTTPException(4xx) naming the problem."""
        limits = self.limits
        if request.model is not None and request.model != self.model_name:
            raise HTTPException(400, f"model: this worker serves {self.model_name!r}, not {request.model!r}")
        field = "prompt" if request.prompt is not None else "messages"
        if request.text_length() > limits.max_prompt_chars:
            raise HTTPException(
                413, f"{field}: {request.text_length()} characters, more than the limit of {limits.max_prompt_chars}"
            )
        if self.family.prompt_format == "messages" and request.prompt is not None:
            raise HTTPException(400, f"prompt: {self.model_name} is a {self.model.config.model_type} model, which "
                                     "takes `messages` ([{role, content}], `<image>` where an image goes; its chat "
                                     "template builds the prompt), not a templated prompt")
        if request.max_new_tokens > limits.max_new_tokens:
            raise HTTPException(422, f"max_new_tokens: {request.max_new_tokens} is more than this worker's limit "
                                     f"of {limits.max_new_tokens}")
        if len(request.images) > limits.images.max_images:
            raise HTTPException(
                413, f"images: {len(request.images)} images, more than the limit of {limits.images.max_images}"
            )
        try:
            images = [decode_image(data, limits.images, i) for i, data in enumerate(request.images)]
        except BadImage as exc:
            raise HTTPException(exc.status, str(exc)) from None
        overrides = request.dart.model_dump(exclude_unset=True) if request.dart is not None else {}
        try:
            dart_config = self.resolve_dart(overrides)
        except PruningConfigError as exc:
            raise HTTPException(400, f"dart: {exc}") from None
        if request.placeholder_count() != len(images):
            raise HTTPException(400, f"{field}: the {field} has {request.placeholder_count()} {DEFAULT_IMAGE_TOKEN} "
                                     f"placeholder(s) but {len(images)} image(s) were sent; put one "
                                     f"{DEFAULT_IMAGE_TOKEN} where each image goes")
        stop = request.stop
        try:
            if request.prompt is not None:
                inputs = self.loaded.prompt_inputs(request.prompt, images)
            else:
                inputs, template_stop = self.loaded.chat_inputs([m.model_dump() for m in request.messages], images,
                                                                self.conv_mode)
                stop = stop if stop is not None else template_stop
            max_new_tokens = fit_to_context(inputs, self.loaded, request.max_new_tokens)
        except PromptError as exc:
            raise HTTPException(400, f"{field}: {exc}") from None
        params = SamplingParams(request.temperature, request.top_p, max_new_tokens, stop)
        usage = {"prompt_tokens": inputs.sequence_length}
        return StreamedGeneration(self.loaded, inputs, params, dart_config), usage

    # -- status ------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"model_names": [self.model_name], "speed": 1, "queue_length": self.slots.queue_length}

    def concurrency(self) -> dict[str, int]:
        slots = self.slots
        return {"limit_model_concurrency": slots.limit, "running": slots.running, "waiting": slots.waiting,
                "queue_length": slots.queue_length}

    def details(self) -> dict[str, Any]:
        """What a client needs to build requests and controls. `image_tokens`: per image (Qwen: the most an
        image can have, from the processor's pixel bound; its grid follows each image's size)."""
        images = self.family.describe_images(self.loaded)
        return {
            "model_name": self.model_name,
            "model_type": self.model.config.model_type,
            "prompt_format": self.family.prompt_format,
            "ratio_budget": self.family.ratio_budget,
            "conv_mode": self.conv_mode,
            "context_length": self.loaded.context_len,
            "num_hidden_layers": self.num_layers,
            "image_tokens": images["image_tokens"],
            "patch_grid": images["patch_grid"],
            "image_aspect_ratio": images["image_aspect_ratio"],
            "dart_defaults": self.dart_defaults,
            "dart_config": self.default_dart_config,
            "limits": {**dataclasses.asdict(self.limits.images), "max_prompt_chars": self.limits.max_prompt_chars,
                       "max_new_tokens": self.limits.max_new_tokens},
        }

    # -- streaming ---------------------------------------------------------------------------------------

    async def stream(self, generation: StreamedGeneration, usage: dict[str, Any]):
        """NDJSON chunks of one generation; waits for a concurrency slot first."""
        queued_at = time.perf_counter()
        await self.slots.acquire()
        loop = asyncio.get_running_loop()
        generation.on_finish = lambda: loop.call_soon_threadsafe(self.slots.release)
        queue_seconds = time.perf_counter() - queued_at
        try:
            generation.start()
        except BaseException:
            self.slots.release()
            raise
        text = ""
        try:
            async for delta in iterate_in_threadpool(iter(generation)):
                text += delta
                yield encode_chunk({"text": text, "error_code": ErrorCode.OK})
            if generation.error is not None:
                yield encode_chunk({"text": text, "error_code": ErrorCode.GENERATION_FAILED, "finished": True,
                                    "error": f"generation failed: {generation.error}"})
                return
            report = generation.report
            yield encode_chunk({
                "text": report.text,
                "error_code": ErrorCode.OK,
                "finished": True,
                "finish_reason": report.finish_reason,
                "usage": {**usage, "completion_tokens": report.num_tokens},
                "queue_seconds": queue_seconds,
                "generation_seconds": report.seconds,
                "pruning": report.pruning(),
            })
        finally:
            generation.cancel()  # no-op when it finished; stops the model when the client went away


def create_app(worker: ModelWorker) -> FastAPI:
    app = json_api("LLaVA-DART model worker", worker.limits.max_body_bytes)

    @app.post("/worker_generate_stream")
    async def worker_generate_stream(request: GenerateRequest):
        # Decoding images and tokenizing take a moment: keep them off the event loop.
        generation, usage = await asyncio.to_thread(worker.prepare, request)
        return StreamingResponse(worker.stream(generation, usage), media_type=NDJSON_MEDIA_TYPE)

    @app.post("/worker_get_status")
    async def worker_get_status():
        return worker.status()

    @app.post("/worker_get_concurrency")
    async def worker_get_concurrency():
        return worker.concurrency()

    @app.post("/model_details")
    async def model_details():
        return worker.details()

    return app


class HeartBeat:
    """Registers the worker with the controller once its own port answers, then sends heartbeats.

    A heartbeat answered with exist=false (e.g. the controller restarted) triggers a new registration;
    an unreachable controller is retried at the next beat.
    """

    def __init__(self, worker: ModelWorker, controller_address: str, worker_address: str, interval: float,
                 secret: str):
        self.worker = worker
        self.controller_address = controller_address.rstrip("/")
        self.worker_address = worker_address.rstrip("/")
        self.interval = interval
        self.headers = authorization_header(secret)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llava-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _wait_until_listening(self, client: httpx.Client) -> None:
        while not self._stop.is_set():
            try:
                client.post(f"{self.worker_address}/worker_get_status", timeout=2)
                return
            except httpx.HTTPError:
                self._stop.wait(0.1)

    def _register(self, client: httpx.Client) -> bool:
        payload = {"worker_name": self.worker_address, "check_heart_beat": True, "worker_status": self.worker.status()}
        try:
            response = client.post(f"{self.controller_address}/register_worker", json=payload, headers=self.headers,
                                   timeout=5)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 401:
                logger.error("the controller at %s refused this worker's secret: give the controller and its "
                             "workers the same %s (or --worker-secret-file)", self.controller_address, SECRET_ENV)
            else:
                logger.warning("cannot register with the controller at %s: %s", self.controller_address, exc)
            return False
        except httpx.HTTPError as exc:
            logger.warning("cannot register with the controller at %s: %s", self.controller_address, exc)
            return False
        logger.info("registered %s with the controller at %s", self.worker_address, self.controller_address)
        return True

    def _beat(self, client: httpx.Client) -> bool:
        """True if the controller knows this worker."""
        payload = {"worker_name": self.worker_address, "queue_length": self.worker.slots.queue_length}
        response = client.post(f"{self.controller_address}/receive_heart_beat", json=payload, headers=self.headers,
                               timeout=5)
        response.raise_for_status()
        return bool(response.json().get("exist"))

    def _loop(self) -> None:
        with httpx.Client() as client:
            self._wait_until_listening(client)
            registered = self._register(client)
            while not self._stop.wait(self.interval):
                try:
                    registered = self._beat(client) if registered else False
                except httpx.HTTPError as exc:
                    logger.warning("heartbeat to %s failed: %s", self.controller_address, exc)
                    continue
                if not registered:
                    registered = self._register(client)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LLaVA-DART model worker")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_WORKER_PORT)
    parser.add_argument("--worker-address", default=None, help="how the controller reaches this worker "
                        "(default http://HOST:PORT, with 127.0.0.1 for a wildcard HOST)")
    parser.add_argument("--controller-address", default=f"http://{DEFAULT_HOST}:{DEFAULT_CONTROLLER_PORT}")
    parser.add_argument("--no-register", action="store_true", help="serve without a controller")
    parser.add_argument("--worker-secret-file", default=None,
                        help=f"file holding the controller's worker secret (default: ${SECRET_ENV})")
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="default: the embedded tiny model")
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--model-name", default=None, help="name to serve under (default: from the path)")
    parser.add_argument("--conv-mode", default=None, help="LLaVA template for `messages` requests (default: the "
                        "one the checkpoint records, else guessed from its name); Qwen uses its own chat template")
    parser.add_argument("--min-pixels", type=int, default=None, help="Qwen: smallest image area the processor makes")
    parser.add_argument("--max-pixels", type=int, default=None, help="Qwen: largest image area the processor makes")
    parser.add_argument("--device", default="cuda", help="cuda (falls back to the CPU when unavailable) or cpu")
    parser.add_argument("--load-8bit", action="store_true", help="bitsandbytes 8-bit weights (CUDA only)")
    parser.add_argument("--load-4bit", action="store_true", help="bitsandbytes 4-bit weights (CUDA only)")
    parser.add_argument("--limit-model-concurrency", type=int, default=5, help="generations running at once")
    parser.add_argument("--heart-beat-interval", type=float, default=WORKER_HEART_BEAT_INTERVAL)
    parser.add_argument("--max-image-bytes", type=int, default=ImageLimits.max_bytes)
    parser.add_argument("--max-image-pixels", type=int, default=ImageLimits.max_pixels)
    parser.add_argument("--max-images", type=int, default=ImageLimits.max_images)
    parser.add_argument("--max-prompt-chars", type=int, default=RequestLimits.max_prompt_chars)
    parser.add_argument("--max-new-tokens-limit", type=int, default=RequestLimits.max_new_tokens)
    parser.add_argument("--log-level", default="info")
    add_pruning_args(parser)
    return parser.parse_args(argv)


def describe_dart(config: dict[str, Any] | None) -> str:
    """One line for logs and the UI: "DART K=2, 4+4 pivots, 128 selected" or "no pruning"."""
    if config is None:
        return "no pruning"
    budget = (f"{config['max_num_trunction']} selected" if config["max_num_trunction"] is not None
              else f"reduction ratio {config['reduction_ratio']:g}")
    method = "" if config["method"] == "dart" else f" ({config['method']} selection)"
    return f"DART K={config['K']}, {config['pivot_image_token']}+{config['pivot_text_token']} pivots, {budget}{method}"


def dart_defaults_from_args(args: argparse.Namespace) -> dict[str, Any]:
    defaults = {SPARSE_FLAG: args.sparse}
    defaults.update({s.name: getattr(args, s.name) for s in SETTINGS if s.per_request})
    return defaults


def worker_address(args: argparse.Namespace) -> str:
    if args.worker_address:
        return args.worker_address
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{args.port}"


def registration_settings(args: argparse.Namespace) -> tuple[str, str] | None:
    """(this worker's address, the worker secret) to register with, None with --no-register; SecretError or
    ValueError naming what is missing or wrong (checked before the model loads)."""
    if args.no_register:
        return None
    secret = read_secret(args.worker_secret_file)
    if secret is None:
        raise SecretError(f"no worker secret: set {SECRET_ENV} or pass --worker-secret-file (the controller's "
                          "secret; a controller started without one logs the file it generated), or serve "
                          "without a controller (--no-register)")
    try:
        address = worker_base_url(worker_address(args))
    except ValueError as exc:
        raise ValueError(f"--worker-address {worker_address(args)!r} {exc}") from None
    return address, secret


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        registration = registration_settings(args)
    except ValueError as exc:  # SecretError too
        logger.error("cannot start the worker: %s", exc)
        sys.exit(2)
    limits = RequestLimits(
        ImageLimits(args.max_image_bytes, args.max_image_pixels, args.max_images),
        args.max_prompt_chars, args.max_new_tokens_limit,
    )
    try:
        worker = ModelWorker(
            args.model_path, args.model_base, args.model_name, args.device, args.load_8bit, args.load_4bit,
            args.attn_implementation, dart_defaults_from_args(args), args.limit_model_concurrency, limits,
            args.conv_mode, args.min_pixels, args.max_pixels,
        )
    except (FileNotFoundError, ImportError, ValueError) as exc:  # bad flags or checkpoint: one clear line
        logger.error("cannot start the worker: %s", exc)
        sys.exit(2)
    address = worker_address(args)
    if registration is not None:
        registered_address, secret = registration
        HeartBeat(worker, args.controller_address, registered_address, args.heart_beat_interval, secret).start()
    logger.info("worker serving %s on %s (%s, concurrency %d, controller %s)",
                worker.model_name, address, describe_dart(worker.default_dart_config), args.limit_model_concurrency,
                "none" if args.no_register else args.controller_address)
    run_app(create_app(worker), args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
