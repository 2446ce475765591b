"""Hostile clients and hostile workers against the real servers on loopback (tracker issue 39, cases 1-4).

1. The page opens only files Gradio itself received (not a server path named in a hand-made file object).
2. Only holders of the worker secret register or send heartbeats; addresses and numbers are checked; every
   registration expires without heartbeats.
3. Request bodies: framing, size, JSON and content type checked on the controller and the worker; the
   controller caps what it reads from a worker.
4. What a worker streams back is checked before the page uses it; error messages carry no memory addresses,
   server paths or addresses.
"""

import dataclasses
import json
import os
import socket
import stat
import threading
import time

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from serve_helpers import (
    HEART_BEAT_EXPIRATION,
    WORKER_SECRET,
    FakeWorker,
    ServerProcess,
    free_port,
    generate_payload,
    heart_beat,
    register_worker,
    registered_workers,
    scene_image,
    start_controller,
    wait_until,
)

from llava.serve.gradio_web_server import AUTO_TEMPLATE, CURSOR, ChatState, GenerationSettings, ServerConfig, WebServer

NOT_RECEIVED = "The image did not arrive as an upload to this page; please upload it again."


@pytest.fixture(scope="module")
def own_controller(tmp_path_factory):
    """A controller for the hostile workers of this module (lottery dispatch, as the issue's report used),
    so that their models never show up in other modules' model lists."""
    proc, url = start_controller(tmp_path_factory.mktemp("security_logs"), expiration=60, dispatch="lottery")
    yield url
    proc.stop()


@pytest.fixture
def fake_worker(own_controller):
    workers = []

    def make(model: str) -> FakeWorker:
        fake = FakeWorker([model])
        workers.append(fake)
        assert register_worker(own_controller, fake.url, [model]).status_code == 200
        return fake

    yield make
    for fake in workers:
        fake.close()


# -- 1. uploads ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(controller, worker, tmp_path_factory):
    """The real page (Gradio's own queue and API), as `main` launches it."""
    server = WebServer(ServerConfig(controller, tmp_path_factory.mktemp("page") / "logs"))
    demo = server.build(["tiny"])
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                show_error=False)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def _send_file_object(page: Client, file_object: dict):
    """The page's /add_upload with a hand-made image value (no `gradio.FileData` marker, so Gradio's own path
    check does not run)."""
    return page.submit("What is in the picture?", file_object, "Default", AUTO_TEMPLATE, "tiny",
                       api_name="/add_upload")


def _unblock(fifo) -> None:
    """Let a reader blocked in open(fifo) go on (it then reads end-of-file)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # nobody is reading it: nothing to release
        pass


@pytest.mark.parametrize("where", ["absolute", "dot-dot out of the upload folder"])
def test_1_a_server_file_named_in_the_upload_value_is_not_opened(page, tmp_path, where):
    private = tmp_path / "private.png"
    scene_image().save(private)
    path = str(private) if where == "absolute" else f"{gr.utils.get_upload_folder()}/../../../../..{private}"
    with pytest.raises(AppError) as refusal:
        _send_file_object(page, {"path": path}).result(timeout=60)
    assert str(refusal.value) == NOT_RECEIVED
    assert str(tmp_path) not in str(refusal.value)


def test_1_a_fifo_named_in_the_upload_value_does_not_block_the_page(page, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    try:
        with pytest.raises(AppError) as refusal:
            _send_file_object(page, {"path": str(fifo)}).result(timeout=60)
        assert str(refusal.value) == NOT_RECEIVED
    finally:
        _unblock(fifo)


def _add_upload_in_thread(server: WebServer, upload: dict, timeout: float = 60):
    """`add_upload` in a thread: (state, the exception it raised); fails the test if it hangs."""
    state, outcome = ChatState(), {}

    def run():
        try:
            server.add_upload(state, "What is in the picture?", upload, "Default", AUTO_TEMPLATE, "tiny")
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"add_upload({upload}) still running after {timeout} s"
    return state, outcome.get("error")


def test_1_inside_the_upload_folder_only_regular_files_are_opened(controller, worker, tmp_path, monkeypatch):
    """Gradio keeps uploads in its upload folder (GRADIO_TEMP_DIR): a real upload there is taken; a link that
    leads out of it or something that is not a regular file is refused without being opened."""
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    folder = uploads / "0123abcd"
    folder.mkdir(parents=True)
    scene_image().save(folder / "scene.png")
    private = tmp_path / "private.png"
    scene_image().save(private)
    (folder / "link.png").symlink_to(private)
    os.mkfifo(folder / "pipe.png")
    server = WebServer(ServerConfig(controller, tmp_path / "logs"))
    try:
        state, error = _add_upload_in_thread(server, {"path": str(folder / "scene.png")})
        assert error is None and state.conv is not None
        for name in ("link.png", "pipe.png"):
            state, error = _add_upload_in_thread(server, {"path": str(folder / name)})
            assert isinstance(error, gr.Error) and error.message == NOT_RECEIVED, error
            assert state.conv is None
    finally:
        _unblock(folder / "pipe.png")


# -- 2. who may register ---------------------------------------------------------------------------------


def test_2_registration_and_heartbeats_need_the_worker_secret(own_controller):
    fake = FakeWorker(["intruder"])
    try:
        for secret in (None, "a-wrong-secret-of-a-decent-length"):
            response = register_worker(own_controller, fake.url, ["intruder"], secret=secret)
            assert response.status_code == 401, response.text
            assert "worker secret" in response.json()["detail"]
            assert heart_beat(own_controller, fake.url, secret=secret).status_code == 401
        # The token in another header or scheme is not taken either.
        response = httpx.post(f"{own_controller}/register_worker", headers={"authorization": WORKER_SECRET},
                              json={"worker_name": fake.url})
        assert response.status_code == 401
        assert fake.url not in registered_workers(own_controller)
        assert "intruder" not in httpx.post(f"{own_controller}/list_models").json()["models"]

        assert register_worker(own_controller, fake.url, ["intruder"]).status_code == 200
        assert heart_beat(own_controller, fake.url, queue_length=3).json() == {"exist": True}
        assert registered_workers(own_controller)[fake.url]["queue_length"] == 3
    finally:
        fake.close()


@pytest.mark.parametrize("address", [
    "file:///etc/passwd",
    "gopher://127.0.0.1:70",
    "127.0.0.1:40000",
    "http://",
    "http://user:password@127.0.0.1:40000",
    "http://127.0.0.1:40000/admin",
    "http://127.0.0.1:40000/?next=x",
    "http://127.0.0.1:40000#fragment",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:40000 /x",
])
def test_2_worker_addresses_must_be_plain_http_base_urls(own_controller, address):
    response = register_worker(own_controller, address, ["m"])
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("worker_name: ")
    assert address not in registered_workers(own_controller)


def test_2_a_trailing_slash_is_the_same_worker(own_controller):
    fake = FakeWorker(["slash"])
    try:
        assert register_worker(own_controller, fake.url + "/", ["slash"]).status_code == 200
        assert fake.url in registered_workers(own_controller)
        assert heart_beat(own_controller, fake.url + "/").json() == {"exist": True}
    finally:
        fake.close()


@pytest.mark.parametrize("status, status_code", [
    ('{"model_names": ["m"], "speed": 1e300, "queue_length": 0}', 422),
    ('{"model_names": ["m"], "speed": Infinity, "queue_length": 0}', 400),
    ('{"model_names": ["m"], "speed": NaN, "queue_length": 0}', 400),
    ('{"model_names": ["m"], "speed": 0, "queue_length": 0}', 422),
    ('{"model_names": ["m"], "speed": 1, "queue_length": 1000000000000000000000000000000}', 422),
    ('{"model_names": ["m"], "speed": 1, "queue_length": -1}', 422),
    ('{"model_names": [], "speed": 1, "queue_length": 0}', 422),
    ('{"model_names": ["' + "m" * 600 + '"], "speed": 1, "queue_length": 0}', 422),
])
def test_2_numbers_in_a_registration_are_finite_and_bounded(own_controller, status, status_code):
    body = f'{{"worker_name": "http://127.0.0.1:{free_port()}", "worker_status": {status}}}'
    response = httpx.post(f"{own_controller}/register_worker", content=body,
                          headers={"content-type": "application/json", "authorization": f"Bearer {WORKER_SECRET}"})
    assert response.status_code == status_code, response.text
    # The registry still answers, and the lottery still draws.
    assert httpx.post(f"{own_controller}/list_workers").status_code == 200
    assert httpx.post(f"{own_controller}/get_worker_address", json={"model": "m"}).json() == {"address": ""}


def test_2_a_heartbeat_queue_length_is_bounded(own_controller):
    fake = FakeWorker(["beats"])
    try:
        assert register_worker(own_controller, fake.url, ["beats"]).status_code == 200
        assert heart_beat(own_controller, fake.url, queue_length=10**30).status_code == 422
        assert registered_workers(own_controller)[fake.url]["queue_length"] == 0
    finally:
        fake.close()


def test_2_a_registration_without_heartbeats_expires_even_if_it_asks_not_to(controller):
    fake = FakeWorker(["no-heartbeats"])
    try:
        response = register_worker(controller, fake.url, ["no-heartbeats"], check_heart_beat=False)
        assert response.status_code == 200
        registered_at = time.monotonic()
        wait_until(lambda: fake.url not in registered_workers(controller), HEART_BEAT_EXPIRATION + 30,
                   what="the silent worker to expire")
        assert time.monotonic() - registered_at >= HEART_BEAT_EXPIRATION - 0.6
    finally:
        fake.close()


@pytest.mark.slow
def test_2_a_refresh_does_not_stand_in_for_heartbeats(serve_logs):
    """/refresh_all_workers (which anyone may call) reads each worker's status; it does not keep a worker
    that sends no heartbeats registered."""
    proc, controller = start_controller(serve_logs, expiration=3)
    fake = FakeWorker(["refreshed"])
    try:
        assert register_worker(controller, fake.url, ["refreshed"]).status_code == 200
        deadline = time.monotonic() + 30
        while fake.url in registered_workers(controller):
            assert time.monotonic() < deadline, "a worker kept alive by refreshes alone"
            assert httpx.post(f"{controller}/refresh_all_workers", timeout=10).status_code == 200
            time.sleep(0.2)
    finally:
        fake.close()
        proc.stop()


def test_2_a_controller_without_a_secret_makes_one_for_its_workers(serve_logs):
    """Without LLAVA_WORKER_SECRET or --worker-secret-file the controller never takes registrations without
    a secret: it generates one into a file only its user can read, logs the file (not the secret), and
    removes it when it stops."""
    proc, controller = start_controller(serve_logs, secret=None)
    try:
        line = next(line for line in proc.log_tail().splitlines() if "generated a worker secret" in line)
        path = line.split("--worker-secret-file ", 1)[1].split()[0]
        secret = open(path).read().strip()
        assert secret not in proc.log_tail()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        fake = FakeWorker(["m"])
        try:
            assert register_worker(controller, fake.url, ["m"], secret=None).status_code == 401
            assert register_worker(controller, fake.url, ["m"], secret=WORKER_SECRET).status_code == 401
            assert register_worker(controller, fake.url, ["m"], secret=secret).status_code == 200
        finally:
            fake.close()
    finally:
        proc.stop()
    assert not os.path.exists(path)


def test_2_the_secret_file_is_read_by_both_sides(serve_logs, tmp_path):
    secret_file = tmp_path / "worker-secret"
    secret_file.write_text("a-secret-from-a-file-0123456789\n")
    proc, controller = start_controller(serve_logs, secret=None, extra=["--worker-secret-file", str(secret_file)])
    try:
        assert register_worker(controller, f"http://127.0.0.1:{free_port()}", ["m"], secret=WORKER_SECRET).status_code == 401
        assert register_worker(controller, f"http://127.0.0.1:{free_port()}", ["m"],
                               secret="a-secret-from-a-file-0123456789").status_code == 200
    finally:
        proc.stop()


@pytest.mark.slow
def test_2_a_worker_without_the_secret_refuses_to_start(serve_logs, tmp_path):
    """Before loading its model: a worker that would register but has no secret says what to set."""
    proc = ServerProcess("llava.serve.model_worker", [
        "--model-path", str(tmp_path / "no-checkpoint-needed"), "--device", "cpu", "--port", str(free_port()),
        "--controller-address", "http://127.0.0.1:9",
    ], serve_logs / "worker-without-secret.log", unset_env=("LLAVA_WORKER_SECRET",))
    try:
        assert proc.process.wait(60) == 2
    finally:
        proc.stop()
    log = proc.log_path.read_text()
    assert "no worker secret: set LLAVA_WORKER_SECRET or pass --worker-secret-file" in log
    assert "Traceback" not in log


def test_2_a_short_secret_is_refused(serve_logs):
    proc = ServerProcess("llava.serve.controller", ["--port", str(free_port())], serve_logs / "short-secret.log",
                         env={"LLAVA_WORKER_SECRET": "short"})
    try:
        assert proc.process.wait(60) == 2
    finally:
        proc.stop()
    assert "the worker secret is 5 characters; use at least 16" in proc.log_path.read_text()


def test_2_the_demo_gives_controller_and_worker_one_fresh_secret_outside_their_command_lines():
    from llava.serve import demo

    args = demo.parse_args(["--device", "cpu"])
    first, second = demo.secret_environments(), demo.secret_environments()
    secret = first["controller"]["LLAVA_WORKER_SECRET"]
    assert len(secret) >= 32 and first["model worker"]["LLAVA_WORKER_SECRET"] == secret
    assert "LLAVA_WORKER_SECRET" not in first["web server"]
    assert second["controller"]["LLAVA_WORKER_SECRET"] != secret
    assert not any(secret in part for command in demo.commands(args).values() for part in command)


# -- 3. request bodies -----------------------------------------------------------------------------------


def _raw_request(url: str, path: str, headers: list[tuple[str, str]], body: bytes, timeout: float = 60) -> int:
    """The status of a hand-written HTTP/1.1 request (httpx will not send contradictory framing)."""
    address = httpx.URL(url)
    with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {address.host}:{address.port}\r\nConnection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        sock.sendall(head.encode() + body)
        received = b""
        while b"\r\n" not in received:
            piece = sock.recv(4096)
            if not piece:
                break
            received += piece
    return int(received.split(b" ", 2)[1])


@pytest.mark.parametrize("server", ["controller", "worker"])
def test_3_content_length_together_with_chunked_encoding_is_refused(request, server):
    url = request.getfixturevalue(server)
    payload = json.dumps(generate_payload(max_new_tokens=1)).encode()
    chunked = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
    headers = [("Content-Type", "application/json"), ("Content-Length", "2"), ("Transfer-Encoding", "chunked")]
    assert _raw_request(url, "/worker_generate_stream", headers, chunked) == 400
    headers = [("Content-Type", "application/json"), ("Content-Length", "2"), ("Content-Length", "9")]
    assert _raw_request(url, "/worker_generate_stream", headers, b"{}") == 400


def test_3_every_received_byte_counts_against_the_limit():
    """The limit holds for what arrives, whatever Content-Length announced."""
    import asyncio

    from llava.serve.http_utils import RequestGuard

    reached = []

    async def app(scope, receive, send):
        reached.append(True)
        while (await receive()).get("more_body"):
            pass

    messages = [{"type": "http.request", "body": b"x" * 40, "more_body": True}] * 3
    messages += [{"type": "http.request", "body": b"", "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x",
             "headers": [(b"content-length", b"10"), (b"content-type", b"application/json")]}
    asyncio.run(RequestGuard(app, max_bytes=100)(scope, receive, send))
    assert sent[0]["status"] == 413 and not reached


@pytest.mark.parametrize("server, endpoint", [("controller", "/worker_generate_stream"),
                                              ("controller", "/register_worker"),
                                              ("controller", "/get_worker_address"),
                                              ("worker", "/worker_generate_stream")])
@pytest.mark.parametrize("body, message", [
    (b"{oops", "the body is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "the body is nested too deeply"),
    (b'{"model": "tiny", "temperature": NaN}', "the body is not valid JSON"),
    (b'{"model": "tiny"}\xff', "the body is not valid JSON"),
])
def test_3_bad_json_is_a_400(request, server, endpoint, body, message):
    url = request.getfixturevalue(server)
    headers = {"content-type": "application/json", "authorization": f"Bearer {WORKER_SECRET}"}
    response = httpx.post(f"{url}{endpoint}", content=body, headers=headers, timeout=60)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["detail"].startswith(message)


@pytest.mark.parametrize("server", ["controller", "worker"])
@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded",
                                          "application/json-seq", "multipart/form-data; boundary=x"])
def test_3_bodies_are_taken_only_as_application_json(request, server, content_type):
    """A cross-site form or `fetch` without a preflight can send text/plain, form or multipart bodies (or none
    of the header): none of them may run a generation."""
    url = request.getfixturevalue(server)
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(generate_payload(max_new_tokens=1)).encode()
    with httpx.Client(timeout=60) as client:
        request_ = client.build_request("POST", f"{url}/worker_generate_stream", content=body, headers=headers)
        if content_type is None:
            request_.headers.pop("content-type", None)
        response = client.send(request_)
    assert response.status_code == 415, response.text[:300]
    assert "Content-Type: application/json" in response.json()["detail"]
    assert httpx.post(f"{url}/worker_generate_stream", json=generate_payload(max_new_tokens=1),
                      timeout=60).status_code == 200


def test_3_the_controller_caps_a_workers_error_body(own_controller, fake_worker):
    fake = fake_worker("huge-error")
    fake.reply = (500, "application/json", b'{"detail": "' + b"x" * 20_000_000 + b'"}')
    response = httpx.post(f"{own_controller}/worker_generate_stream", json=generate_payload(model="huge-error"),
                          timeout=60)
    assert response.status_code == 502
    assert len(response.content) < 10_000
    assert response.json()["detail"] == "the model worker answered HTTP 500 with an error too long to relay"

    fake.reply = (400, "application/json", b'{"detail": "prompt: too long"}')
    response = httpx.post(f"{own_controller}/worker_generate_stream", json=generate_payload(model="huge-error"))
    assert (response.status_code, response.json()) == (400, {"detail": "prompt: too long"})


def test_3_the_controller_caps_a_line_of_a_workers_stream(own_controller, fake_worker):
    fake = fake_worker("endless-line")
    fake.reply = (200, "application/x-ndjson", b'{"text": "' + b"y" * 12_000_000)
    with httpx.stream("POST", f"{own_controller}/worker_generate_stream", json=generate_payload(model="endless-line"),
                      timeout=60) as response:
        assert response.status_code == 200
        body = response.read()
    assert len(body) < 10_000
    (last,) = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert last["finished"] is True and last["error_code"] != 0
    assert last["error"] == "the model worker sent a reply that cannot be used; please ask again"


# -- 4. what a worker sends back -----------------------------------------------------------------------------


def _final(**pruning) -> dict:
    report = {"enabled": True, "pruned": True, "kept_image_tokens": 2, "image_tokens": 576,
              "kept_indices": [[0, 1]], "patch_grid": [24, 24], "patch_grids": [[24, 24]],
              "image_aspect_ratio": "pad", "selection_seconds": 0.001, "prefill_seconds": 0.01,
              "config": {"K": 2, "method": "dart"}, **pruning}
    return {"text": "A disc.", "error_code": 0, "finished": True, "finish_reason": "stop",
            "usage": {"prompt_tokens": 600, "completion_tokens": 3}, "pruning": report}


PARTIAL = {"text": "A d", "error_code": 0}

HOSTILE_STREAMS = {
    "huge patch grid": [PARTIAL, _final(patch_grid=[1000, 1000], patch_grids=[[1000, 1000]])],
    "kept index outside the grid": [PARTIAL, _final(kept_indices=[[0, 576]])],
    "negative kept index": [PARTIAL, _final(kept_indices=[[-1, 3]])],
    "more kept lists than images": [PARTIAL, _final(kept_indices=[[0], [1]], patch_grids=[[24, 24], [24, 24]])],
    "a grid that is not two sides": [PARTIAL, _final(patch_grid=[24], patch_grids=[[24]])],
    "a method that is not a name": [PARTIAL, _final(config={"method": ["dart"]})],
    "a line that is not JSON": [PARTIAL, b"<html>502 Bad Gateway</html>"],
    "a line nested too deeply": [PARTIAL, b"[" * 100_000],
    "a chunk without text": [{"error_code": 0}],
    "a last chunk without text": [PARTIAL, {"finished": True, "error_code": 0}],
    "text that is not a string": [{"text": ["A"], "error_code": 0}],
    "a chunk that is not an object": [PARTIAL, [1, 2, 3]],
}


@pytest.fixture
def page_handlers(own_controller, tmp_path):
    return WebServer(ServerConfig(own_controller, tmp_path / "logs", request_timeout=60))


def _ask(server: WebServer, model: str) -> list:
    state = ChatState()
    server.add_text(state, "What is in the picture?", scene_image(), "Default", AUTO_TEMPLATE, model)
    values = dataclasses.astuple(GenerationSettings(temperature=0, max_new_tokens=4))
    return list(server.http_bot(state, model, *values))


def _assert_failed_plainly(outputs: list) -> str:
    """The last update shows a plain error in the chat, no cursor, no overlay, and Regenerate / Clear usable."""
    state, chatbot, overlay, stats, *buttons = outputs[-1]
    message = chatbot[-1]["content"]
    assert message.startswith("**Error:** "), message
    assert not any(CURSOR in m["content"] for m in chatbot)
    assert state.failed and overlay is None and stats == message
    assert [b.get("interactive") for b in buttons] == [False, False, False, True, True]
    return message


@pytest.mark.parametrize("case", list(HOSTILE_STREAMS))
def test_4_a_workers_reply_is_checked_before_the_page_uses_it(page_handlers, fake_worker, case):
    fake = fake_worker(f"hostile-{case.replace(' ', '-')}")
    fake.stream(*[c if isinstance(c, (dict, bytes)) else json.dumps(c).encode() for c in HOSTILE_STREAMS[case]])
    started = time.monotonic()
    outputs = _ask(page_handlers, fake.models[0])
    message = _assert_failed_plainly(outputs)
    assert message.startswith("**Error:** the model worker sent a reply that cannot be used (")
    assert time.monotonic() - started < 30


def test_4_a_well_formed_hostile_worker_still_gets_its_answer_shown(page_handlers, fake_worker):
    """The checks refuse only what is broken: the same fake worker with a sound reply is shown as usual."""
    fake = fake_worker("sound")
    fake.stream(PARTIAL, _final())
    state, chatbot, overlay, stats = _ask(page_handlers, "sound")[-1][:4]
    assert chatbot[-1]["content"].startswith("A disc.") and not state.failed
    assert overlay.size == (504, 504) and "kept **2 / 576**" in stats


def test_4_error_messages_show_no_memory_addresses_or_server_paths(page_handlers, fake_worker):
    fake = fake_worker("leaky")
    fake.stream(PARTIAL, {"text": "A d", "error_code": 1, "finished": True,
                          "error": "generation failed: <Tensor object at 0x7f3a2b1c9d30> in "
                                   "/opt/models/secret-project/modeling.py line 12 (see http://10.0.0.7:40000/x)"})
    message = _assert_failed_plainly(_ask(page_handlers, "leaky"))
    assert message.startswith("**Error:** generation failed: <Tensor object at 0x…> in …")
    for leak in ("0x7f3a", "/opt/models", "secret-project", "10.0.0.7"):
        assert leak not in message


def test_4_an_unreachable_controller_is_reported_without_its_address(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    outputs = _ask(WebServer(ServerConfig(dead, tmp_path / "logs")), "tiny")
    message = _assert_failed_plainly(outputs)
    assert "cannot reach the controller" in message and "127.0.0.1" not in message


def test_4_a_failure_while_showing_an_answer_leaves_the_page_usable(page_handlers, fake_worker, monkeypatch):
    from llava.serve import gradio_web_server

    fake = fake_worker("sound-but-unlucky")
    fake.stream(PARTIAL, _final())

    def broken_drawing(*args, **kwargs):
        raise OSError("cannot allocate 0x7f00deadbeef bytes for /usr/lib/x86_64-linux-gnu/libpng16.so")

    monkeypatch.setattr(gradio_web_server, "draw_kept_patches", broken_drawing)
    message = _assert_failed_plainly(_ask(page_handlers, "sound-but-unlucky"))
    assert message == "**Error:** the page could not show this answer; please ask again"
