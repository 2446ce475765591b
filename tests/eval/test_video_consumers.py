"""Videos in the consumers that are not eval workers: run_llava, the terminal chat and the lmms-eval plugin, on a tiny
Qwen2-VL checkpoint and a small mp4; greedy, they give one question about one video the same answer. A family
without videos (the LLaVA default) refuses one in one clear line."""

import io
import logging

import pytest
from PIL import Image

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.cli import run_llava
from llava.serve import cli

pytest.importorskip("av")

QUESTION = "What happens in the video?"
# Two pairs of 112 x 112 frames (Qwen2-VL merges frame pairs): 2 x (8 x 8 patches / 4) = 32 video tokens; the
# 168 x 112 image: 12 x 8 patches / 4 = 24 image tokens.
GREEDY = ["--temperature", "0", "--max_new_tokens", "5", "--device", "cpu", "--max-frames", "4"]
DART = ["--sparse", "--reduction_ratio", "0.5"]


@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    from llava.model.released_layouts import build_released_checkpoint

    return build_released_checkpoint("Qwen/Qwen2-VL-7B-Instruct", tmp_path_factory.mktemp("ckpt") / "qwen2-vl-tiny")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An 8-frame mp4 at 4 fps (a square moving across), of which --max-frames 4 keeps frames 0, 2, 4 and 7."""
    from llava.video import write_video

    frames = []
    for k in range(8):
        frame = Image.new("RGB", (112, 112), (20, 30, 40))
        frame.paste((230, 40 + 20 * k, 30), (10 * k, 30, 10 * k + 40, 70))
        frames.append(frame)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames, frame_rate=4)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "img.png"
    Image.new("RGB", (168, 112), (10, 200, 30)).save(path)
    return path


def ask(qwen_ckpt, clip, capsys, *extra) -> str:
    """run_llava's answer (exit 0) to QUESTION about `clip`."""
    assert run_llava.main(["--model-path", str(qwen_ckpt), "--video-file", str(clip), "--query", QUESTION, *GREEDY,
                           *extra]) == 0
    return capsys.readouterr().out.strip()


def test_run_llava_answers_about_a_video_and_counts_its_tokens(qwen_ckpt, clip, capsys, caplog):
    with caplog.at_level(logging.INFO):
        assert ask(qwen_ckpt, clip, capsys) != ""
    assert "no pruning: 32 visual tokens" in caplog.text


def test_run_llava_prunes_the_video_and_the_image_each_by_the_qwen_budget(qwen_ckpt, clip, image, caplog):
    args = run_llava.parse_args(["--model-path", str(qwen_ckpt), "--video-file", str(clip), "--image-file", str(image),
                                 "--query", QUESTION, *GREEDY, *DART])
    _, record, _ = run_llava.answer(args)
    assert [count for _, count in record.image_spans[0]] == [32, 24]  # the video first, then the image
    # The Qwen budget, per span: T = int(m * (1 - 0.5) / 8) -> 2 and 1; kept = 4 image pivots + 8 pivots * T.
    assert [len(p) for p in record.kept_image_positions(0)] == [4 + 8 * 2, 4 + 8 * 1]
    with caplog.at_level(logging.INFO):
        assert run_llava.main(["--model-path", str(qwen_ckpt), "--video-file", str(clip), "--image-file",
                               str(image), "--query", QUESTION, *GREEDY, *DART]) == 0
    assert "DART kept 32 of 56 visual tokens (42.9% pruned)" in caplog.text


def test_video_files_repeat_or_are_separated_by_sep():
    args = run_llava.parse_args(["--video-file", "a.mp4,b.mp4", "--video-file", "c", "--query", "q"])
    assert run_llava.video_paths(args) == ["a.mp4", "b.mp4", "c"] and args.image_file is None
    with pytest.raises(SystemExit):
        run_llava.parse_args(["--query", "q"])  # neither an image nor a video


def test_a_family_without_videos_refuses_one_in_one_line(clip, capsys):
    assert run_llava.main(["--video-file", str(clip), "--query", QUESTION, "--device", "cpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "llava checkpoint, whose prompts take no videos" in line
    assert cli.main(["--video-file", str(clip), "--device", "cpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "whose prompts take no videos" in line


def test_the_chat_answers_its_first_turn_about_a_video_as_run_llava(qwen_ckpt, clip, capsys):
    expected = ask(qwen_ckpt, clip, capsys, *DART)
    args = cli.parse_args(["--model-path", str(qwen_ckpt), "--video-file", str(clip), "--temperature", "0",
                           "--max-new-tokens", "5", "--device", "cpu", "--max-frames", "4", *DART])
    out = io.StringIO()
    assert cli.chat(args, stdin=io.StringIO(f"{QUESTION}\nAnd then?\n"), stdout=out) == 0
    lines = out.getvalue().splitlines()
    first = next(line for line in lines if line.startswith("user: assistant: "))
    assert first.removeprefix("user: assistant: ").strip() == expected
    # DART's line counts the video's 32 tokens, in both turns (the video stays in the first turn)
    assert sum("DART kept 20 of 32 image tokens" in line for line in lines) == 2


def _generate_request(model, visuals, index=0):
    from lmms_eval.api.instance import Instance

    model.task_dict = {"t": {"test": {index: {"visuals": visuals}}}}
    return Instance("generate_until", (QUESTION, {"max_new_tokens": 5, "temperature": 0, "until": []},
                                       lambda doc: doc["visuals"], index, "t", "test"), index,
                    {"task": "t", "doc_id": index, "repeats": 1})


def test_the_lmms_plugin_answers_a_video_path_as_run_llava(qwen_ckpt, clip, capsys):
    from llava.lmms_plugin.models import Qwen2VLDart

    expected = ask(qwen_ckpt, clip, capsys, *DART)
    model = Qwen2VLDart(pretrained=str(qwen_ckpt), device="cpu", Sparse=True, reduction_ratio=0.5, max_num_frames=4)
    prepared = model._prepare(0, QUESTION, [str(clip)])
    assert prepared.error is None and prepared.inputs.image_tokens == [32]
    assert model.generate_until([_generate_request(model, [str(clip)])]) == [expected]
    assert (model.kept_image_tokens, model.image_tokens) == (20, 32)
    # fps caps the frames: 8 frames at 4 fps with fps=0.5 -> int(8 / 4 * 0.5) = 1 frame, one merged pair
    model.fps = 0.5
    assert model._prepare(0, QUESTION, [str(clip)]).inputs.image_tokens == [16]
    missing = model._prepare(0, QUESTION, [str(clip.with_name("missing.mp4"))])
    assert missing.inputs is None and "video not found" in missing.error


def test_the_lmms_plugin_checks_the_frame_args_and_refuses_videos_on_a_family_without_them(clip):
    from llava.lmms_plugin.models import LlavaDart, ModelArgsError

    for bad, message in (({"max_num_frames": 0}, "max_num_frames=0 is out of range"),
                         ({"fps": -1.0}, r"fps=-1.0: expected a positive number")):
        with pytest.raises(ModelArgsError, match=message):
            LlavaDart.check_model_args({"pretrained": DEFAULT_MODEL_PATH, **bad})
    model = LlavaDart(pretrained=DEFAULT_MODEL_PATH, device="cpu")
    with pytest.raises(ValueError, match=r"--model llava_dart \(.*\) takes no videos"):
        model._prepare(0, QUESTION, [str(clip)])


@pytest.mark.parametrize("hub_id", ["Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen3-VL-8B-Instruct",
                                    "llava-hf/llava-onevision-qwen2-7b-ov-hf"])
def test_a_chats_first_turn_with_a_video_is_the_question_prompt(hub_id, clip, tmp_path):
    """`chat_inputs(..., videos)` puts the videos first in the first user turn: one turn is `question_inputs`'
    prompt, with or without an image; a later turn's prompt keeps the video there."""
    from llava.model.families import load_model
    from llava.model.released_layouts import build_released_checkpoint
    from llava.video import load_video

    loaded = load_model(str(build_released_checkpoint(hub_id, tmp_path / "ckpt")), None, device="cpu")
    video = load_video(clip, max_frames=4)
    for images in ([], [Image.new("RGB", (100, 80), (1, 2, 3))]):
        question = loaded.question_inputs(QUESTION, images, None, [video])
        turn = {"role": "user", "content": ("<image>\n" if images else "") + QUESTION}
        chat, stop = loaded.chat_inputs([turn], images, None, [video])
        assert (chat.text, chat.input_ids.tolist(), chat.image_tokens, stop) == \
            (question.text, question.input_ids.tolist(), question.image_tokens, None)
    later, _ = loaded.chat_inputs([turn, {"role": "assistant", "content": "A square."},
                                   {"role": "user", "content": "And then?"}], images, None, [video])
    assert later.image_tokens == question.image_tokens and later.text.startswith(question.text)
