"""Helpers of the serving tests: real server processes on free loopback ports, requests, images."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from suite_timeouts import hang_timeout

HEART_BEAT_EXPIRATION = 2.0
HEART_BEAT_INTERVAL = 0.5
WORKER_CONCURRENCY = 2
MAX_IMAGE_PIXELS = 1_000_000
MAX_IMAGE_BYTES = 2_000_000
# The secret the test controllers and workers share (LLAVA_WORKER_SECRET).
WORKER_SECRET = "serving-tests-worker-secret-0123456789"
SECRET_ENV = "LLAVA_WORKER_SECRET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    timeout = hang_timeout(timeout)  # catches a hang; LLAVA_TEST_TIMEOUT_SCALE stretches it on a slow machine
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


class ServerProcess:
    """A `python -m MODULE ...` child with its output in a log file; its own process group so that
    stopping it also stops what it started (the demo's children)."""

    def __init__(self, module: str, args: list[str], log_path: Path, env: dict | None = None,
                 unset_env: tuple[str, ...] = ()):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        environment = {name: value for name, value in {**os.environ, **(env or {})}.items() if name not in unset_env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=self._log, stderr=subprocess.STDOUT,
            env=environment, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, predicate, timeout: float, what: str):
        def ready():
            if not self.alive():
                raise RuntimeError(f"{what}: process exited with {self.process.returncode}:\n{self.log_tail()}")
            return predicate()

        try:
            return wait_until(ready, timeout, what=what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- log ---\n{self.log_tail()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the process only (no clean shutdown, as if it crashed)."""
        self.process.kill()
        self.process.wait()


def secret_env(secret: str | None) -> dict:
    """The environment that gives a server `secret` (none: the variable is unset, see `ServerProcess`)."""
    return {SECRET_ENV: secret} if secret is not None else {}


def start_controller(log_dir: Path, expiration: float = HEART_BEAT_EXPIRATION, dispatch: str = "shortest_queue",
                     secret: str | None = WORKER_SECRET, extra: list[str] = ()):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ServerProcess("llava.serve.controller", ["--port", str(port), "--heart-beat-expiration", str(expiration),
                                                    "--dispatch-method", dispatch, *extra],
                         log_dir / f"controller-{port}.log", env=secret_env(secret),
                         unset_env=() if secret is not None else (SECRET_ENV,))
    proc.wait_ready(lambda: httpx.post(f"{url}/list_models", timeout=2).status_code == 200, 60, "controller start")
    return proc, url


def start_worker(log_dir: Path, controller_url: str, model_path: Path | str, model_name: str = "tiny",
                 extra: list[str] = ()) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--controller-address", controller_url, "--model-path", str(model_path),
            "--model-name", model_name, "--device", "cpu", "--heart-beat-interval", str(HEART_BEAT_INTERVAL),
            "--limit-model-concurrency", str(WORKER_CONCURRENCY), *extra]
    proc = ServerProcess("llava.serve.model_worker", args, log_dir / f"worker-{port}.log", env=secret_env(WORKER_SECRET))
    proc.wait_ready(lambda: url in registered_workers(controller_url), 120, "worker registration")
    return proc, url


def registered_workers(controller_url: str) -> dict:
    return httpx.post(f"{controller_url}/list_workers", timeout=2).json()["workers"]


def worker_headers(secret: str | None = WORKER_SECRET) -> dict:
    """What a worker sends with its registration and heartbeats."""
    return {"authorization": f"Bearer {secret}"} if secret is not None else {}


def register_worker(controller_url: str, address: str, models: list[str] | None = None, speed: float = 1.0,
                    queue_length: int = 0, secret: str | None = WORKER_SECRET, **fields) -> httpx.Response:
    """POST /register_worker as a worker would (with its status unless `models` is None: then the controller
    asks the worker)."""
    body = {"worker_name": address, **fields}
    if models is not None:
        body["worker_status"] = {"model_names": models, "speed": speed, "queue_length": queue_length}
    return httpx.post(f"{controller_url}/register_worker", json=body, headers=worker_headers(secret), timeout=10)


def heart_beat(controller_url: str, address: str, queue_length: int = 0,
               secret: str | None = WORKER_SECRET) -> httpx.Response:
    return httpx.post(f"{controller_url}/receive_heart_beat", json={"worker_name": address, "queue_length": queue_length},
                      headers=worker_headers(secret), timeout=10)


class FakeWorker:
    """A stand-in model worker on a loopback port that answers what a test tells it to: a broken or hostile
    worker. `reply` = (status, content type, body) of /worker_generate_stream; /worker_get_status answers a
    normal status for `models`; anything else is 404."""

    def __init__(self, models: list[str]):
        self.models = models
        self.reply: tuple[int, str, bytes] = (200, "application/x-ndjson", b"")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/worker_generate_stream":
                    status, content_type, body = fake.reply
                elif self.path == "/worker_get_status":
                    status, content_type = 200, "application/json"
                    body = json.dumps({"model_names": fake.models, "speed": 1, "queue_length": 0}).encode()
                else:
                    status, content_type, body = 404, "application/json", b'{"detail": "Not Found"}'
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the reader stopped early, as it may
                    pass

            def log_message(self, format, *args):  # noqa: A002 (http.server's signature): keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stream(self, *chunks: dict | bytes) -> None:
        """Answer generations with these NDJSON lines (bytes are sent as they are, plus a newline)."""
        lines = [c if isinstance(c, bytes) else json.dumps(c).encode() for c in chunks]
        self.reply = (200, "application/x-ndjson", b"".join(line + b"\n" for line in lines))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- requests ----------------------------------------------------------------------------------------------

PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions. USER: <image>\nWhat is in the picture? ASSISTANT:"
)


def scene_image(width: int = 320, height: int = 240) -> Image.Image:
    """Grey background, a red disc and a blue square: structure for the tower to see."""
    image = Image.new("RGB", (width, height), (230, 230, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 6, width // 2, height * 2 // 3), fill=(220, 40, 40))
    draw.rectangle((width * 5 // 8, height // 2, width * 7 // 8, height * 7 // 8), fill=(40, 80, 220))
    return image


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def generate_payload(**overrides) -> dict:
    payload = {"model": "tiny", "prompt": PROMPT, "images": [b64_png(scene_image())], "temperature": 0,
               "max_new_tokens": 4, "stop": "</s>"}
    payload.update(overrides)
    return payload


def stream_chunks(url: str, payload: dict, timeout: float = 120) -> list[dict]:
    """All chunks of a 200 stream (fails the test on any other status)."""
    with httpx.stream("POST", f"{url}/worker_generate_stream", json=payload, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"status {response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line.strip()]
