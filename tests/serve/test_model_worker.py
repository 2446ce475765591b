"""The model worker over loopback: streamed answers with their pruning report, per-request DART settings,
bad requests answered with 4xx while the worker keeps serving."""

import asyncio
import base64
import json
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    PROMPT,
    WORKER_CONCURRENCY,
    b64_png,
    generate_payload,
    scene_image,
    stream_chunks,
)

from llava.serve.model_worker import ModelWorker, create_app
from llava.serve.protocol import GenerateRequest


def _check_stream(chunks: list[dict]) -> dict:
    """Every chunk but the last is a partial answer that extends the previous one; returns the last."""
    *partial, final = chunks
    previous = ""
    for chunk in partial:
        assert chunk["error_code"] == 0 and "finished" not in chunk
        assert chunk["text"].startswith(previous)
        previous = chunk["text"]
    assert final["finished"] is True and final["error_code"] == 0
    return final


def _kept_indices_are_valid(pruning: dict, count: int) -> None:
    (indices,) = pruning["kept_indices"]
    assert len(indices) == count == pruning["kept_image_tokens"]
    assert indices == sorted(set(indices)) and 0 <= indices[0] and indices[-1] < 576


def test_streamed_generation_end_to_end_directly_and_through_the_controller(worker, controller):
    direct = _check_stream(stream_chunks(worker, generate_payload(max_new_tokens=16)))
    assert direct["finish_reason"] == "length"  # the random tiny model never stops by itself
    assert direct["usage"]["completion_tokens"] == 16
    pruning = direct["pruning"]
    # The worker's default: --sparse --max_num_trunction 128 -> 4 image pivots + 8 pivots x 16 = 132.
    assert pruning["enabled"] and pruning["pruned"]
    assert (pruning["kept_image_tokens"], pruning["image_tokens"]) == (132, 576)
    _kept_indices_are_valid(pruning, 132)
    assert pruning["patch_grid"] == [24, 24]
    assert pruning["config"]["K"] == 2 and pruning["config"]["max_num_trunction"] == 128
    assert 0 < pruning["selection_seconds"] < pruning["prefill_seconds"]
    assert direct["usage"]["prompt_tokens"] > 576

    via_controller = _check_stream(stream_chunks(controller, generate_payload(max_new_tokens=16)))
    assert via_controller["text"] == direct["text"]  # greedy: the same answer
    assert via_controller["pruning"]["kept_indices"] == pruning["kept_indices"]


@pytest.mark.parametrize(
    "dart, kept, pruned",
    [
        ({"sparse": False}, 576, False),
        ({"max_num_trunction": 64}, 4 + 8 * 8, True),
        ({"max_num_trunction": None, "reduction_ratio": 0.5}, 4 + 8 * (288 // 8), True),  # M = 576 * (1 - 0.5)
        ({"pivot_image_token": 2, "pivot_text_token": 2, "max_num_trunction": 40}, 2 + 4 * 10, True),
        ({"pruning_method": "random", "max_num_trunction": 64}, 68, True),
        ({"pruned_layer": 3, "max_num_trunction": 16}, 4 + 8 * 2, True),
    ],
)
def test_a_request_overrides_the_workers_dart_settings(worker, dart, kept, pruned):
    final = _check_stream(stream_chunks(worker, generate_payload(max_new_tokens=2, dart=dart)))
    pruning = final["pruning"]
    assert pruning["kept_image_tokens"] == kept and pruning["pruned"] is pruned
    _kept_indices_are_valid(pruning, kept)
    if pruned:
        config = pruning["config"]
        for field, key in (("pruned_layer", "K"), ("pruning_method", "method"), ("max_num_trunction", "max_num_trunction")):
            if field in dart:
                assert config[key] == dart[field]
    else:
        assert pruning["config"] is None


def test_two_images_without_pruning_report_each_image(worker):
    images = [b64_png(scene_image()), b64_png(scene_image(200, 300))]
    prompt = PROMPT.replace("<image>", "<image>\n<image>")
    final = _check_stream(stream_chunks(worker, generate_payload(prompt=prompt, images=images, max_new_tokens=2,
                                                                 dart={"sparse": False})))
    assert final["pruning"]["image_tokens"] == 1152
    assert [len(k) for k in final["pruning"]["kept_indices"]] == [576, 576]


MISSING = object()

BAD_REQUESTS = {
    "temperature out of range": ({"temperature": 5}, 422, "temperature: Input should be less than or equal to 2"),
    "no new tokens": ({"max_new_tokens": 0}, 422, "max_new_tokens: Input should be greater than or equal to 1"),
    "too many new tokens": ({"max_new_tokens": 5000}, 422, "max_new_tokens: 5000 is more than this worker's limit of 1024"),
    "missing prompt": ({"prompt": MISSING}, 422, "send exactly one of `prompt` (a templated prompt) and `messages`"),
    "unknown field": ({"sparse": True}, 422, "sparse: Extra inputs are not permitted"),
    "not base64": ({"images": ["@@@@"]}, 400, "images[0] is not valid base64"),
    "not an image": ({"images": [base64.b64encode(b"GIF89a but not really").decode()]}, 400, "images[0] is not an image"),
    "too many pixels": ({"images": "big"}, 413, f"pixels, more than the limit of {MAX_IMAGE_PIXELS}"),
    "too many bytes": ({"images": "noisy"}, 413, f"larger than the limit of {MAX_IMAGE_BYTES} bytes"),
    "too many images": ({"images": "five"}, 413, "images: 5 images, more than the limit of 4"),
    "image count mismatch": ({"prompt": "USER: hello ASSISTANT:"}, 400,
                             "prompt: the prompt has 0 <image> placeholder(s) but 1 image(s) were sent"),
    "prompt too many characters": ({"prompt": PROMPT + "x" * 17000}, 413, "characters, more than the limit of 16384"),
    "prompt too many tokens": ({"prompt": PROMPT.replace("What", "red box " * 1500 + "What")}, 400,
                               "this model takes prompts of at most"),
    "wrong model": ({"model": "other"}, 400, "this worker serves 'tiny', not 'other'"),
    "K too deep": ({"dart": {"pruned_layer": 4}}, 400, "DART_config['K']=4 must be in 1..3"),
    "ratio out of range": ({"dart": {"reduction_ratio": 1.0}}, 422, "dart.reduction_ratio: Input should be less than 1"),
    "unknown method": ({"dart": {"pruning_method": "magic"}}, 400, "DART_config['method']='magic' is unknown"),
}


def _materialize(fields: dict) -> dict:
    images = fields.get("images")
    if images == "big":
        fields = {**fields, "images": [b64_png(Image.new("RGB", (1001, 1000)))]}
    elif images == "noisy":
        noise = Image.merge("RGB", [Image.effect_noise((1000, 900), 128).convert("L") for _ in range(3)])
        fields = {**fields, "images": [b64_png(noise)]}
    elif images == "five":
        fields = {**fields, "images": [b64_png(scene_image(64, 64))] * 5,
                  "prompt": PROMPT.replace("<image>", "<image>\n" * 5)}
    return {k: v for k, v in generate_payload(**fields).items() if v is not MISSING}


def _still_serving(worker: str) -> None:
    assert httpx.post(f"{worker}/worker_get_status").json()["model_names"] == ["tiny"]
    final = stream_chunks(worker, generate_payload(max_new_tokens=1))[-1]
    assert final["finished"] and final["error_code"] == 0


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_4xx_naming_the_problem_and_the_worker_keeps_serving(worker, case):
    fields, status, message = BAD_REQUESTS[case]
    payload = _materialize(fields)
    response = httpx.post(f"{worker}/worker_generate_stream", json=payload, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    _still_serving(worker)


def test_malformed_and_oversized_bodies_are_refused(worker):
    response = httpx.post(f"{worker}/worker_generate_stream", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("the body is not valid JSON (")
    details = httpx.post(f"{worker}/model_details").json()
    too_big = 4 * (details["limits"]["max_bytes"] * 4 // 3 + 4) + 4 * 16384 + 65536 + 1
    response = httpx.post(f"{worker}/worker_generate_stream", content=b" " * too_big,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and f"the request body is {too_big} bytes" in response.json()["detail"]
    _still_serving(worker)


def test_status_concurrency_and_details(worker):
    assert httpx.post(f"{worker}/worker_get_status").json() == {"model_names": ["tiny"], "speed": 1, "queue_length": 0}
    assert httpx.post(f"{worker}/worker_get_concurrency").json() == {
        "limit_model_concurrency": WORKER_CONCURRENCY, "running": 0, "waiting": 0, "queue_length": 0}
    details = httpx.post(f"{worker}/model_details").json()
    assert details["num_hidden_layers"] == 4 and details["image_tokens"] == 576 and details["patch_grid"] == [24, 24]
    assert details["dart_defaults"]["sparse"] is True and details["dart_config"]["max_num_trunction"] == 128
    assert details["limits"]["max_pixels"] == MAX_IMAGE_PIXELS


# -- in-process: a generation that fails after the stream started ---------------------------------------


def test_a_failure_during_generation_ends_the_stream_with_an_error_chunk(tiny_ckpt, monkeypatch):
    worker = ModelWorker(str(tiny_ckpt), model_name="tiny", device="cpu", limit_model_concurrency=1)

    def broken_generate(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    real_generate = worker.model.generate
    monkeypatch.setattr(worker.model, "generate", broken_generate)
    with TestClient(create_app(worker)) as client:
        with client.stream("POST", "/worker_generate_stream", json=generate_payload(max_new_tokens=2)) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
        final = json.loads(lines[-1])
        assert final["error_code"] == 1 and final["finished"] is True
        assert final["error"] == "generation failed: CUDA error: out of memory"
        assert worker.slots.running == 0 and worker.slots.waiting == 0

        monkeypatch.setattr(worker.model, "generate", real_generate)
        with client.stream("POST", "/worker_generate_stream", json=generate_payload(max_new_tokens=2)) as response:
            final = json.loads([line for line in response.iter_lines() if line][-1])
        assert final["error_code"] == 0 and final["usage"]["completion_tokens"] == 2


def test_overlapping_requests_with_different_dart_settings_run_at_once(tiny_ckpt):
    worker = ModelWorker(str(tiny_ckpt), model_name="tiny", device="cpu", limit_model_concurrency=2,
                         dart_defaults={"sparse": True, "max_num_trunction": 128})
    darts = [{"sparse": False}, {"max_num_trunction": 64}]
    requests = [GenerateRequest(**generate_payload(max_new_tokens=3, dart=dart)) for dart in darts]

    # Each request's generation waits after its prefill until the other one has prefilled too: this only
    # completes if neither request waits for the other to finish.
    barrier, calls = threading.Barrier(len(requests)), threading.local()

    def wait_after_prefill(module, args, output):
        calls.count = getattr(calls, "count", 0) + 1
        if calls.count == 1:
            barrier.wait(timeout=60)

    async def last_chunk(request):
        generation, usage = worker.prepare(request)
        return [json.loads(chunk) async for chunk in worker.stream(generation, usage)][-1]

    async def both():
        return await asyncio.gather(*(last_chunk(request) for request in requests))

    handle = worker.model.lm_head.register_forward_hook(wait_after_prefill)
    try:
        finals = asyncio.run(both())
    finally:
        handle.remove()
    assert not barrier.broken
    assert [final["error_code"] for final in finals] == [0, 0]
    assert [final["pruning"]["kept_image_tokens"] for final in finals] == [576, 4 + 8 * 8]
    assert [final["pruning"]["pruned"] for final in finals] == [False, True]
    assert finals[1]["pruning"]["config"]["max_num_trunction"] == 64
    assert getattr(worker.model.config, "DART_config", None) is None  # the worker never sets it


def test_a_worker_with_bad_dart_flags_refuses_to_start(tiny_ckpt, caplog):
    from llava.serve import model_worker

    with pytest.raises(SystemExit) as info:
        model_worker.main(["--model-path", str(tiny_ckpt), "--device", "cpu", "--no-register", "--sparse",
                           "--pruned_layer", "4"])
    assert info.value.code == 2
    assert "cannot start the worker: DART_config['K']=4 must be in 1..3" in caplog.text
