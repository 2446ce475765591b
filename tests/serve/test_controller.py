"""The controller: dispatch rules in-process, then heartbeats, expiry and re-dispatch with real processes."""

import asyncio
import json
import random
import threading
import time
from collections import Counter

import httpx
import pytest
from serve_helpers import (
    HEART_BEAT_EXPIRATION,
    free_port,
    generate_payload,
    heart_beat,
    register_worker,
    registered_workers,
    start_controller,
    start_worker,
    stream_chunks,
    wait_until,
    worker_headers,
)

from llava.serve.controller import Controller, DispatchMethod
from llava.serve.protocol import ErrorCode, WorkerStatus


def _controller(method: DispatchMethod, seed: int = 0) -> Controller:
    return Controller(method, heart_beat_expiration=2.0, client=None, rng=random.Random(seed))


def _register(controller: Controller, name: str, models: list[str], queue: int = 0, speed: float = 1.0) -> None:
    status = WorkerStatus(model_names=models, speed=speed, queue_length=queue)
    assert asyncio.run(controller.register_worker(name, status))


def test_shortest_queue_picks_the_smallest_queue_per_speed_and_counts_the_dispatch():
    controller = _controller(DispatchMethod.SHORTEST_QUEUE)
    _register(controller, "a", ["m"], queue=3)             # 3 / 1 = 3.0
    _register(controller, "b", ["m"], queue=1)             # 1 / 1 = 1.0
    _register(controller, "c", ["m"], queue=6, speed=4)    # 6 / 4 = 1.5
    _register(controller, "d", ["other"], queue=0)
    # b (1.0) -> b is 2.0; c (1.5) -> c is 1.75; c (1.75) -> c is 2.0; tie b / c at 2.0 -> the first registered.
    assert [controller.get_worker_address("m") for _ in range(4)] == ["b", "c", "c", "b"]
    assert controller.get_worker_address("m", exclude={"a", "b", "c"}) == ""
    assert controller.get_worker_address("unknown") == ""
    assert controller.list_models() == ["m", "other"]


def test_lottery_draws_in_proportion_to_speed():
    controller = _controller(DispatchMethod.LOTTERY, seed=1)
    _register(controller, "slow", ["m"], speed=1)
    _register(controller, "fast", ["m"], speed=3)
    counts = Counter(controller.get_worker_address("m") for _ in range(4000))
    assert abs(counts["fast"] / 4000 - 0.75) < 0.03
    assert controller.workers["fast"].queue_length == 0  # the lottery does not count dispatches


def test_every_worker_without_recent_heartbeats_expires():
    controller = _controller(DispatchMethod.SHORTEST_QUEUE)
    _register(controller, "beating", ["m"])
    _register(controller, "silent", ["m"])
    _register(controller, "long-silent", ["m"])
    now = time.monotonic()
    assert controller.receive_heart_beat("beating", queue_length=5)
    controller.workers["beating"].last_heart_beat = now - 1.0
    controller.workers["silent"].last_heart_beat = now - 2.5
    controller.workers["long-silent"].last_heart_beat = now - 100
    assert controller.remove_stale_workers(now) == ["silent", "long-silent"]
    assert set(controller.workers) == {"beating"}
    assert controller.workers["beating"].queue_length == 5
    assert not controller.receive_heart_beat("silent", 0)  # unknown now: told to register again
    assert controller.aggregated_status() == {"model_names": ["m"], "speed": 1.0, "queue_length": 5}


# -- with processes --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_disappears_and_its_model_gets_a_clear_503(serve_logs, controller, tiny_ckpt):
    proc, url = start_worker(serve_logs, controller, tiny_ckpt, model_name="doomed")
    try:
        assert "doomed" in httpx.post(f"{controller}/list_models").json()["models"]
        heartbeat = registered_workers(controller)[url]["last_heart_beat"]
        wait_until(lambda: registered_workers(controller)[url]["last_heart_beat"] > heartbeat, 5, what="a heartbeat")
        proc.kill()  # SIGKILL: no goodbye, the heartbeats just stop
        killed_at = time.monotonic()
        wait_until(lambda: url not in registered_workers(controller), HEART_BEAT_EXPIRATION + 5,
                   what="the dead worker to expire")
        assert time.monotonic() - killed_at >= HEART_BEAT_EXPIRATION - 0.6  # not before its heartbeats went stale
    finally:
        proc.stop()
    assert "doomed" not in httpx.post(f"{controller}/list_models").json()["models"]
    assert httpx.post(f"{controller}/get_worker_address", json={"model": "doomed"}).json() == {"address": ""}
    response = httpx.post(f"{controller}/worker_generate_stream", json=generate_payload(model="doomed"))
    assert response.status_code == 503
    assert response.json()["detail"] == "cannot serve model 'doomed': no worker is registered"


def test_requests_skip_an_unreachable_worker(serve_logs, worker):
    """A second controller knows a dead worker that its shortest-queue dispatch prefers (empty queue, 1000x
    the speed of the live one): the forwarded request still succeeds, and the dead worker is dropped on the
    way. (The lottery's draw is tested above with a seeded generator; here it would pick the dead worker
    only 1000 times in 1001.)"""
    proc, controller = start_controller(serve_logs, expiration=60, dispatch="shortest_queue")
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        assert register_worker(controller, dead, ["tiny"], speed=1000).status_code == 200
        # Without a status the controller asks the worker for it.
        assert register_worker(controller, worker).status_code == 200
        assert set(registered_workers(controller)) == {dead, worker}
        # A busy live worker: the dead one is strictly first in line, not first by a tie.
        assert heart_beat(controller, worker, queue_length=5).json() == {"exist": True}

        chunks = stream_chunks(controller, generate_payload(max_new_tokens=3))
        assert chunks[-1]["finished"] and chunks[-1]["error_code"] == 0
        assert set(registered_workers(controller)) == {worker}

        # A worker that does not answer its status is refused at registration, and dropped by a refresh.
        other_dead = f"http://127.0.0.1:{free_port()}"
        response = register_worker(controller, other_dead)
        assert response.status_code == 502 and other_dead in response.json()["detail"]
        assert register_worker(controller, other_dead, ["tiny"], speed=1000).status_code == 200
        assert httpx.post(f"{controller}/refresh_all_workers").json() == {"models": ["tiny"]}
        assert set(registered_workers(controller)) == {worker}
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "endpoint, body, message",
    [
        ("/register_worker", {"check_heart_beat": True}, "worker_name: Field required"),
        ("/receive_heart_beat", {"worker_name": "x", "queue_length": -1}, "queue_length: Input should be greater than or equal to 0"),
        ("/get_worker_address", {"model": ""}, "model: String should have at least 1 character"),
        ("/get_worker_address", {"model": "m", "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_controller_answers_bad_requests_with_422_naming_the_field(controller, endpoint, body, message):
    response = httpx.post(f"{controller}{endpoint}", json=body, headers=worker_headers())
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"prompt": "hi"}, 422, "the request must name the model"),
        ({"model": 3, "prompt": "hi"}, 422, "model: Input should be a valid string"),
        ("[]", 422, "the request must name the model"),
        ("{oops", 400, "the body is not valid JSON (Expecting property name enclosed in double quotes: line 1 "
                       "column 2 (char 1))"),
    ],
)
def test_forwarding_needs_a_model_name(controller, body, status, message):
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(f"{controller}/worker_generate_stream", content=content,
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["detail"] == message


@pytest.mark.slow
def test_a_worker_killed_mid_stream_ends_every_stream_with_an_error_and_is_dropped(serve_logs, tiny_ckpt):
    """Streams through the controller when their worker is SIGKILLed mid-answer: each client gets a last NDJSON
    error chunk with the text so far, the controller logs one warning per stream (no traceback) and drops the
    worker before it answers, so that the next request is told at once that nobody serves the model."""
    streams = 6
    proc, controller = start_controller(serve_logs, expiration=60)  # heartbeats cannot explain the removal
    worker, url = start_worker(serve_logs, controller, tiny_ckpt, model_name="mortal",
                               extra=["--limit-model-concurrency", str(streams)])
    results: list[list[dict] | BaseException] = [[] for _ in range(streams)]

    def consume(i: int) -> None:
        try:
            # Sampling makes the random model write spaces, so text streams out word by word (greedy, it
            # repeats one space-free token and its text arrives only at the end); 1024 tokens take seconds.
            payload = generate_payload(model="mortal", max_new_tokens=1024, stop=None, temperature=1.0)
            # Raw lines, not `client.stream_generate` (which ends a broken stream itself): the controller's
            # own answer must be a complete NDJSON stream.
            with httpx.stream("POST", f"{controller}/worker_generate_stream", json=payload, timeout=60) as response:
                for line in response.iter_lines():
                    results[i].append(json.loads(line))
        except BaseException as exc:  # reported by the assertions below
            results[i] = exc

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(streams)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: all(isinstance(r, list) and len(r) >= 2 for r in results), 60,
                   what="every stream to be generating")
        worker.kill()
        for thread in threads:
            thread.join(30)
        broken = 0
        for chunks in results:
            assert isinstance(chunks, list), chunks
            *answer, last = chunks
            assert not any(chunk.get("finished") for chunk in answer), "a chunk after the last one"
            assert last["finished"] is True
            if last["error_code"] == 0:  # sampling met the end-of-sequence token before the kill
                continue
            broken += 1
            assert last["error_code"] == ErrorCode.WORKER_LOST
            assert last["text"] == answer[-1]["text"]
            assert last["error"].startswith("the model worker stopped in the middle of the answer")
        assert broken >= streams // 2, f"only {broken} of {streams} streams were still open at the kill"
        assert url not in registered_workers(controller)  # right away, not after the heartbeat expiration
        response = httpx.post(f"{controller}/worker_generate_stream", json=generate_payload(model="mortal"))
        assert response.status_code == 503
        assert response.json()["detail"] == "cannot serve model 'mortal': no worker is registered"
        log = proc.log_tail(200_000)
        assert log.count(f"the stream from worker {url} broke off mid-answer") == broken
        assert "Traceback" not in log
    finally:
        worker.stop()
        proc.stop()
