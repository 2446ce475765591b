"""Serving a Qwen2-VL checkpoint: the worker takes `messages` through the model's chat template, reports each
image's merged token grid, and the web page sends it messages and draws the kept cells on Qwen's resized view;
a LLaVA worker takes `messages` too, through its conversation template."""

import dataclasses

import httpx
import pytest
import torch
from serve_helpers import b64_png, generate_payload, scene_image, stream_chunks
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from llava.conversation import get_conv_template
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.serve import demo
from llava.serve.gradio_web_server import (
    AUTO_TEMPLATE,
    BUDGET_RATIO,
    ChatState,
    GenerationSettings,
    ServerConfig,
    WebServer,
    conversation_messages,
)
from llava.serve.overlay import KEPT_OUTLINE, RESIZE_VIEW, cell_pixels, draw_kept_patches
from llava.serve.protocol import stop_string

QUESTION = "What colour is the disc?"


def _qwen_payload(**overrides):
    payload = {"model": "qwen-tiny", "messages": [{"role": "user", "content": f"<image>{QUESTION}"}],
               "images": [b64_png(scene_image())], "temperature": 0, "max_new_tokens": 5,
               "dart": {"sparse": True, "reduction_ratio": 0.5}}
    payload.update(overrides)
    return payload


def _merged_grid(image, patch=14, merge=2, max_pixels=64 * 28 * 28):
    """Qwen's resize rule (transformers' own smart_resize), in merged tokens (rows, cols)."""
    height, width = smart_resize(image.height, image.width, factor=patch * merge, min_pixels=56 * 56,
                                 max_pixels=max_pixels)
    return [height // (patch * merge), width // (patch * merge)]


@pytest.fixture(scope="module")
def qwen_direct(qwen_ckpt):
    """The checkpoint loaded in this process: the expected answers come from its own generate."""
    tokenizer, model, processor, _ = load_pretrained_model(str(qwen_ckpt), None, "qwen-tiny", device="cpu")
    return tokenizer, model, processor


def _direct_answer(qwen_direct, image, max_new_tokens=5, ratio=0.5):
    tokenizer, model, processor = qwen_direct
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    dart = parse_dart_config(make_dart_config(reduction_ratio=ratio), model.config.text_config.num_hidden_layers)
    record = PruningRecord(dart_config=dart.to_dict())
    with torch.inference_mode():
        out = model.generate(**inputs, pruning_record=record, max_new_tokens=max_new_tokens, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return answer, [positions.tolist() for positions in record.kept_image_positions(0)]


def test_a_qwen_worker_answers_messages_as_the_models_own_generate_does(qwen_worker, qwen_direct):
    image = scene_image()
    final = stream_chunks(qwen_worker, _qwen_payload())[-1]
    assert final["finished"] and final["error_code"] == 0
    answer, kept = _direct_answer(qwen_direct, image)
    assert final["text"] == answer
    pruning = final["pruning"]
    assert pruning["kept_indices"] == kept
    rows, cols = _merged_grid(image)  # 320 x 240 pixels -> 252 x 168 -> 6 rows x 9 columns of merged tokens
    assert pruning["patch_grids"] == [[rows, cols]] and pruning["image_aspect_ratio"] == RESIZE_VIEW
    # The ratio budget: T = int(54 * 0.5 / 8) = 3 per pivot, kept = 4 image pivots + 8 * 3.
    assert (pruning["image_tokens"], pruning["kept_image_tokens"]) == (rows * cols, 4 + 8 * int(rows * cols * 0.5 / 8))


def test_a_qwen_worker_reports_two_images_on_their_own_grids(qwen_worker):
    wide, tall = scene_image(320, 240), scene_image(160, 300)
    payload = _qwen_payload(messages=[{"role": "user", "content": "<image><image>Which has the disc?"}],
                            images=[b64_png(wide), b64_png(tall)], dart={"sparse": False})
    pruning = stream_chunks(qwen_worker, payload)[-1]["pruning"]
    grids = [_merged_grid(wide), _merged_grid(tall)]
    assert pruning["patch_grids"] == grids and pruning["patch_grid"] is None
    assert [len(kept) for kept in pruning["kept_indices"]] == [r * c for r, c in grids]


QWEN_BAD_REQUESTS = {
    "a templated prompt": ({"messages": None, "prompt": "<image>hi"}, 400,
                           "prompt: qwen-tiny is a qwen2_vl model, which takes `messages`"),
    "placeholder count": ({"messages": [{"role": "user", "content": "hi"}]}, 400,
                          "messages: the messages has 0 <image> placeholder(s) but 1 image(s) were sent"),
    "both forms": ({"prompt": "<image>hi"}, 422, "send exactly one of `prompt`"),
    "no user turn last": ({"messages": [{"role": "user", "content": "<image>hi"}, {"role": "assistant", "content": "x"}]},
                          422, "the last message must be the user's"),
    "unknown role": ({"messages": [{"role": "robot", "content": "<image>hi"}]}, 422, "messages.0.role"),
    "a method before the LLM": ({"dart": {"sparse": True, "pruning_method": "visionzip"}}, 400,
                                "'visionzip' reduces the image before the language model, which qwen2_vl models"),
}


@pytest.mark.parametrize("case", list(QWEN_BAD_REQUESTS))
def test_bad_qwen_requests_get_4xx_naming_the_problem(qwen_worker, case):
    fields, status, message = QWEN_BAD_REQUESTS[case]
    payload = {k: v for k, v in _qwen_payload(**fields).items() if v is not None}
    response = httpx.post(f"{qwen_worker}/worker_generate_stream", json=payload, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_qwen_model_details_tell_clients_how_to_talk_to_it(qwen_worker):
    details = httpx.post(f"{qwen_worker}/model_details").json()
    assert details["prompt_format"] == "messages" and details["model_type"] == "qwen2_vl" and details["ratio_budget"]
    assert details["image_tokens"] == 64  # the tiny processor's max_pixels 64 * 28 * 28 over 28 x 28 per token
    assert details["patch_grid"] is None and details["image_aspect_ratio"] == RESIZE_VIEW
    assert details["num_hidden_layers"] == 4 and details["conv_mode"] is None


def test_a_llava_worker_takes_messages_through_its_conversation_template(worker):
    conv = get_conv_template("llava_v0")  # what LLaVA's rule picks for the name "tiny"
    conv.append_message(conv.roles[0], "<image>\nWhat is in the picture?")
    conv.append_message(conv.roles[1], None)
    by_prompt = stream_chunks(worker, generate_payload(prompt=conv.get_prompt(), stop=stop_string(conv)))[-1]
    messages = [{"role": "user", "content": "<image>\nWhat is in the picture?"}]
    by_messages = stream_chunks(worker, generate_payload(prompt=None, messages=messages, stop=None))[-1]
    assert by_messages["text"] == by_prompt["text"]
    assert by_messages["usage"] == by_prompt["usage"]
    assert by_messages["pruning"]["kept_indices"] == by_prompt["pruning"]["kept_indices"]
    details = httpx.post(f"{worker}/model_details").json()
    assert details["prompt_format"] == "prompt" and details["conv_mode"] == "llava_v0"


def _outlined(overlay, grid, cell) -> int:
    rows, cols = grid
    return sum(overlay.getpixel((c * cell, r * cell)) == KEPT_OUTLINE for r in range(rows) for c in range(cols))


def test_the_web_page_sends_messages_to_a_qwen_worker_and_draws_its_grid(controller, qwen_worker, qwen_direct, tmp_path):
    server = WebServer(ServerConfig(controller, tmp_path / "logs"))
    layer, max_kept, budget = server.slider_ranges("qwen-tiny")
    assert layer["maximum"] == 3 and max_kept["maximum"] == 64 and budget["value"] == BUDGET_RATIO

    state, image = ChatState(), scene_image()
    server.add_text(state, QUESTION, image, "Default", AUTO_TEMPLATE, "qwen-tiny")
    assert conversation_messages(state.conv) == [{"role": "user", "content": f"<image>{QUESTION}"}]
    values = dataclasses.astuple(GenerationSettings(temperature=0, max_new_tokens=5, budget_mode=BUDGET_RATIO,
                                                    reduction_ratio=0.5))
    state, chatbot, overlay, stats = list(server.http_bot(state, "qwen-tiny", *values))[-1][:4]
    answer, kept = _direct_answer(qwen_direct, image)
    assert state.conv.messages[-1][-1] == answer
    grid = _merged_grid(image)
    cell = cell_pixels(grid)
    assert overlay.size == (grid[1] * cell, grid[0] * cell)
    assert _outlined(overlay, grid, cell) == len(kept[0]) == state.last_pruning["kept_image_tokens"]
    assert f"kept **{len(kept[0])} / {grid[0] * grid[1]}**" in stats


def test_conversation_messages_put_each_turns_images_first():
    state = ChatState(conv=get_conv_template("vicuna_v1"))
    conv = state.conv
    conv.append_message(conv.roles[0], ("What is this?\n<image>", scene_image(), "Default"))
    conv.append_message(conv.roles[1], "A disc.")
    conv.append_message(conv.roles[0], "And its colour?")
    conv.append_message(conv.roles[1], None)
    assert conversation_messages(conv) == [
        {"role": "user", "content": "<image>What is this?"},
        {"role": "assistant", "content": "A disc."},
        {"role": "user", "content": "And its colour?"},
    ]


def test_the_resize_view_draws_a_grid_that_is_not_square():
    image = scene_image(320, 240)
    overlay = draw_kept_patches(image, [0, 8, 53], (6, 9), RESIZE_VIEW, cell=10)
    assert overlay.size == (90, 60)
    outlined = {(r, c) for r in range(6) for c in range(9) if overlay.getpixel((c * 10, r * 10)) == KEPT_OUTLINE}
    assert outlined == {(0, 0), (0, 8), (5, 8)}
    with pytest.raises(ValueError, match="must be square for the 'pad' view"):
        draw_kept_patches(image, [0], (6, 9), "pad")


def test_the_demo_starts_a_qwen_worker_with_the_releases_ratio_budget(qwen_ckpt, tiny_ckpt):
    qwen = demo.commands(demo.parse_args(["--model-path", str(qwen_ckpt)]))["model worker"]
    assert qwen[qwen.index("--sparse"):] == ["--sparse", "--pruned_layer", "2", "--reduction_ratio", "0.778"]
    llava = demo.commands(demo.parse_args(["--model-path", str(tiny_ckpt)]))["model worker"]
    assert llava[llava.index("--sparse"):] == ["--sparse", "--pruned_layer", "2", "--max_num_trunction", "128"]
