"""The web server's handlers, driven without a browser against the real controller and worker."""

import dataclasses
import json
import re

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageFile
from serve_helpers import free_port, register_worker, registered_workers, scene_image, start_worker

from llava.conversation import get_conv_template
from llava.serve.gradio_web_server import (
    AUTO_TEMPLATE,
    BUDGET_RATIO,
    CURSOR,
    ChatState,
    GenerationSettings,
    ServerConfig,
    WebServer,
    to_chatbot,
)
from llava.serve.overlay import KEPT_OUTLINE

CELL = 21  # overlay pixels per patch


@pytest.fixture
def server(controller, worker, tmp_path):
    return WebServer(ServerConfig(controller, tmp_path / "logs"))


def _ask(server, state, text, image=None, model="tiny", **settings):
    server.add_text(state, text, image, "Default", AUTO_TEMPLATE, model)
    values = dataclasses.astuple(GenerationSettings(**{"temperature": 0, "max_new_tokens": 4, **settings}))
    return list(server.http_bot(state, model, *values))


def _outlined_patches(overlay) -> int:
    """Kept patches carry an outline whose top-left pixel is the outline colour; dimmed ones cannot."""
    return sum(overlay.getpixel((c * CELL, r * CELL)) == KEPT_OUTLINE for r in range(24) for c in range(24))


def _log_records(server) -> list[dict]:
    return [json.loads(line) for line in server.log.path().read_text().splitlines()]


def test_a_chat_turn_streams_the_answer_shows_kept_patches_and_is_logged(server):
    state = ChatState()
    image = scene_image()
    outputs = _ask(server, state, "What is in the picture?", image, max_kept=64)

    first, final = outputs[0], outputs[-1]
    assert first[1][-1] == {"role": "assistant", "content": CURSOR}  # the answer box opens at once
    state, chatbot, overlay, stats = final[:4]
    answer = state.conv.messages[-1][-1]
    assert CURSOR not in answer
    assert chatbot[0] == {"role": "user", "content": "What is in the picture?"}
    # The answer, then its pruning line (shown, never sent back to the model).
    assert chatbot[-1]["role"] == "assistant"
    assert re.fullmatch(re.escape(answer or "*(empty answer)*") + r"\n\n\*DART kept 68/576 image tokens · prefill "
                        r"\d+\.\d{3} s\*", chatbot[-1]["content"])
    assert "DART kept" not in state.conv.get_prompt()
    assert "kept **68 / 576** image tokens (88.2% pruned)" in stats and "prefill" in stats

    # The overlay is the model's 24 x 24 patch view with exactly the kept patches outlined.
    assert overlay.size == (24 * CELL, 24 * CELL)
    assert _outlined_patches(overlay) == state.last_pruning["kept_image_tokens"] == 68

    (record,) = _log_records(server)
    assert record["type"] == "chat" and record["model"] == "tiny"
    assert record["dart"]["sparse"] is True and record["dart"]["max_num_trunction"] == 64
    assert record["pruning"]["kept_image_tokens"] == 68
    assert record["state"]["messages"][-1] == [state.conv.roles[1], answer]
    (digest,) = record["images"]
    assert (server.log.log_dir / "serve_images").rglob(f"{digest}.png").__next__().exists()

    server.vote("upvote", state, "tiny")
    assert [r["type"] for r in _log_records(server)] == ["chat", "upvote"]


def test_follow_up_questions_continue_the_conversation_with_its_image(server):
    state = ChatState()
    _ask(server, state, "What is in the picture?", scene_image())
    outputs = _ask(server, state, "And what colour is it?", dart_on=False)
    state, chatbot, overlay, stats = outputs[-1][:4]
    assert [m["role"] for m in chatbot] == ["user", "assistant", "user", "assistant"]
    assert "*DART kept 132/576 image tokens" in chatbot[1]["content"]
    assert "*no pruning: 576/576 image tokens" in chatbot[3]["content"]
    assert state.conv.get_prompt().count("<image>") == 1
    assert "**DART off**: kept **576 / 576**" in stats
    assert _outlined_patches(overlay) == 576


def test_every_image_of_a_two_image_conversation_gets_its_own_overlay_panel(server):
    """Each image span is pruned on its own with the full budget; the overlay shows them left to right."""
    state = ChatState()
    state.new_conversation(get_conv_template("vicuna_v1"))
    conv = state.conv
    conv.append_message(conv.roles[0], ("<image>\nWhat is in the first picture?", scene_image(), "Default"))
    conv.append_message(conv.roles[1], "A disc.")
    conv.append_message(conv.roles[0], ("<image>\nAnd in this one?", scene_image(240, 320).rotate(90), "Default"))
    conv.append_message(conv.roles[1], None)
    values = dataclasses.astuple(GenerationSettings(temperature=0, max_new_tokens=4, max_kept=64))
    state, _, overlay, stats = list(server.http_bot(state, "tiny", *values))[-1][:4]

    per_image = [len(kept) for kept in state.last_pruning["kept_indices"]]
    assert per_image == [68, 68] and "kept **136 / 1152**" in stats
    panel, gap = 24 * CELL, 8
    assert overlay.size == (2 * panel + gap, panel)
    left, right = overlay.crop((0, 0, panel, panel)), overlay.crop((panel + gap, 0, 2 * panel + gap, panel))
    assert [_outlined_patches(left), _outlined_patches(right)] == per_image


def test_ratio_budget_and_pivots_reach_the_worker(server):
    state = ChatState()
    outputs = _ask(server, state, "Describe it.", scene_image(), budget_mode=BUDGET_RATIO, reduction_ratio=0.5,
                   pivot_image_token=2, pivot_text_token=2)
    # M = 576 * 0.5 = 288 over 4 pivots -> 72 each; kept = 2 image pivots + 4 * 72.
    assert "kept **290 / 576**" in outputs[-1][3]


def test_a_refused_request_is_shown_then_dropped_or_regenerated(server):
    state = ChatState()
    outputs = _ask(server, state, "What is in the picture?", scene_image(), pruned_layer=9)
    state, chatbot, overlay, stats = outputs[-1][:4]
    assert chatbot[-1]["content"].startswith("**Error:** dart: DART_config['K']=9 must be in 1..3")
    assert state.failed and overlay is None and stats.startswith("**Error:**")
    regenerate, clear = outputs[-1][-2:]
    assert regenerate["interactive"] and clear["interactive"]

    # Regenerate retries the same question (with valid settings now).
    server.regenerate(state, "Default")
    values = dataclasses.astuple(GenerationSettings(temperature=0, max_new_tokens=3))
    final = list(server.http_bot(state, "tiny", *values))[-1]
    assert not state.failed and "kept **132 / 576**" in final[3]

    # A new question after a failure drops the failed exchange from the conversation.
    _ask(server, state, "Again?", pruned_layer=9)
    assert state.failed
    _ask(server, state, "Once more?")
    texts = [m for _, m in state.conv.messages]
    assert not any("Again?" == t for t in texts) and not any(isinstance(t, str) and "Error" in t for t in texts)
    assert texts[-2] == "Once more?" and len(texts) == 4


def test_a_model_without_worker_gets_a_clear_message(server):
    state = ChatState()
    final = _ask(server, state, "Hello?", scene_image(), model="ghost")[-1]
    assert final[1][-1]["content"] == "**Error:** no worker serves 'ghost' right now"


def test_an_unreachable_worker_is_dropped_and_the_user_told(server, controller):
    dead = f"http://127.0.0.1:{free_port()}"
    register_worker(controller, dead, ["ghost2"]).raise_for_status()
    final = _ask(server, ChatState(), "Hello?", scene_image(), model="ghost2")[-1]
    # The connection failed, the web server had the controller refresh its list (dropping the dead worker)
    # and asked again: nobody serves the model now.
    assert final[1][-1]["content"] == "**Error:** no worker serves 'ghost2' right now"
    assert dead not in registered_workers(controller)


@pytest.mark.slow
def test_a_worker_killed_mid_answer_is_reported_and_dropped(server, controller, serve_logs, tiny_ckpt):
    """The page streams from the worker itself: when that worker dies mid-answer the user sees why (no
    address, no socket error) and the controller forgets the worker at once."""
    proc, url = start_worker(serve_logs, controller, tiny_ckpt, model_name="mortal")
    try:
        state = ChatState()
        server.add_text(state, "What is in the picture?", scene_image(), "Default", AUTO_TEMPLATE, "mortal")
        # Sampling: the random model then writes spaces, so its text streams (see test_controller).
        values = dataclasses.astuple(GenerationSettings(temperature=1.0, max_new_tokens=1024))
        outputs = server.http_bot(state, "mortal", *values)
        for _ in range(3):  # the cursor, then two pieces of the answer
            next(outputs)
        proc.kill()
        state, chatbot = list(outputs)[-1][:2]
    finally:
        proc.stop()
    # The cause is RemoteProtocolError (a cut chunked body) or ReadError (a reset connection).
    assert re.fullmatch(r"\*\*Error:\*\* the model worker stopped in the middle of the answer \((RemoteProtocol|Read)"
                        r"Error\); please ask again", chatbot[-1]["content"]), chatbot[-1]["content"]
    assert state.failed
    assert url not in registered_workers(controller)


@pytest.fixture
def decodes(monkeypatch):
    """The (width, height) of every pixel decode PIL runs (each `ImageFile.load` of an image not loaded yet)."""
    sizes = []
    real_load = ImageFile.ImageFile.load

    def load(image):
        if getattr(image, "tile", None):  # pixels still to decode
            sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


def test_an_oversized_upload_is_refused_plainly_without_being_decoded(server, tmp_path, decodes):
    upload = tmp_path / "gradio-tmp" / "huge.png"
    upload.parent.mkdir()
    Image.new("1", (12000, 12000)).save(upload)  # 18 kB on disk, 432 MB as RGB
    state = ChatState()
    with pytest.raises(gr.Error) as refusal:
        server.add_text(state, "What is in the picture?", str(upload), "Default", AUTO_TEMPLATE, "tiny")
    assert refusal.value.message == ("The image is 12000x12000 pixels; the limit is 4096x4096 (16,777,216 "
                                     "pixels); please upload a smaller image.")
    assert decodes == [] and state.conv is None


@pytest.mark.parametrize("content", [b"just some text", b"\x89PNG\r\n\x1a\n" + b"\0" * 64])
def test_an_unreadable_upload_gets_a_message_without_the_server_path(server, tmp_path, content):
    upload = tmp_path / "upload.png"
    upload.write_bytes(content)
    with pytest.raises(gr.Error) as refusal:
        server.add_text(ChatState(), "Hi?", str(upload), "Default", AUTO_TEMPLATE, "tiny")
    assert refusal.value.message in (
        "The file is not an image in a supported format (PNG, JPEG, WEBP, GIF, BMP); please upload another image.",
        "The image could not be decoded (the file may be damaged or cut short); please upload another image.",
    )
    assert str(tmp_path) not in refusal.value.message


def test_a_large_jpeg_upload_is_decoded_at_reduced_scale_and_answered(server, tmp_path, decodes):
    upload = tmp_path / "photo.jpg"
    scene_image(9600, 7200).save(upload, quality=80)
    decodes.clear()
    state = ChatState()
    server.add_text(state, "What is in the picture?", str(upload), "Default", AUTO_TEMPLATE, "tiny")
    (kept,) = state.conv.get_images(return_pil=True)
    # The worker takes at most 1,000,000 pixels: the chat keeps 1154x866; the JPEG decoded at 1/8 scale.
    assert kept.size == (1154, 866) and kept.mode == "RGB"
    assert decodes == [(1200, 900)]
    values = dataclasses.astuple(GenerationSettings(temperature=0, max_new_tokens=3))
    final = list(server.http_bot(state, "tiny", *values))[-1]
    assert not state.failed and "kept **132 / 576**" in final[3]


def test_uploads_through_the_page_reach_the_handler_unopened(server, tmp_path):
    """Through the running page (Gradio's own upload, queue and error path): a normal image is taken, a file
    Gradio could not open and a huge image get plain messages, without the server's temporary path."""
    Image.new("1", (12000, 12000)).save(tmp_path / "huge.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    scene_image().save(tmp_path / "scene.png")
    demo = server.build(["tiny"])
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                show_error=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)

        def send(name):
            return client.predict("What is in the picture?", handle_file(str(tmp_path / name)), "Default",
                                  AUTO_TEMPLATE, "tiny", api_name="/add_upload")

        chatbot = send("scene.png")[0]
        assert chatbot[0]["content"][0]["text"] == "What is in the picture?"
        for name, message in [
            ("huge.png", "The image is 12000x12000 pixels; the limit is 4096x4096 (16,777,216 pixels); please "
                         "upload a smaller image."),
            ("junk.png", "The file is not an image in a supported format (PNG, JPEG, WEBP, GIF, BMP); please "
                         "upload another image."),
        ]:
            with pytest.raises(AppError) as refusal:
                send(name)
            assert str(refusal.value) == message
    finally:
        demo.close()


def test_empty_input_is_ignored(server):
    state = ChatState()
    outputs = _ask(server, state, "   ")
    assert len(outputs) == 1 and outputs[0][1] == [] and state.conv is None


def test_sliders_follow_the_models_depth_and_image_tokens(server):
    layer, max_kept, budget = server.slider_ranges("tiny")
    assert layer["maximum"] == 3 and max_kept["maximum"] == 576 and "value" not in budget
    assert server.fetch_models() == ["tiny"]


def test_chatbot_messages_hide_the_image_token_and_skip_template_examples():
    state = ChatState(conv=get_conv_template("v0"))  # vicuna_v0 starts with an example exchange (offset 2)
    state.conv.append_message("Human", ("<image>\n", scene_image(), "Default"))
    state.conv.append_message("Assistant", "")
    state.conv.append_message("Human", "why?")
    state.conv.append_message("Assistant", None)
    state.answer_notes[3] = "DART kept 1/576 image tokens"
    assert to_chatbot(state) == [
        {"role": "user", "content": "(image)"},
        {"role": "assistant", "content": "*(empty answer)*\n\n*DART kept 1/576 image tokens*"},
        {"role": "user", "content": "why?"},
    ]


def test_the_auto_template_is_the_one_the_worker_prompts_with(server, monkeypatch):
    """ "auto" on the page follows the worker's /model_details conv_mode (what its checkpoint records), and
    LLaVA's name guess only when the worker gives none."""
    for reported, expected in [("llava_v1", get_conv_template("llava_v1")), (None, get_conv_template("llava_v0"))]:
        monkeypatch.setattr(server, "details", lambda model, refresh=False, mode=reported: {"conv_mode": mode})
        state = ChatState()
        server.add_text(state, "Is it dark?", scene_image(), "Default", AUTO_TEMPLATE, "tiny")
        assert (state.conv.system, state.conv.sep_style, state.conv.roles) == (
            expected.system, expected.sep_style, expected.roles)
