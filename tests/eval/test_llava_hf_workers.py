"""The embedded default converted to the llava-hf layout runs through the eval worker, run_llava and the model
worker via its family, and answers as the original layout does: same answers, same kept image tokens."""

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.workers import model_vqa_loader
from llava.model.families import family_for, load_model
from llava.model.llava_hf_convert import convert_checkpoint
from llava.serve.model_worker import ModelWorker
from llava.serve.protocol import GenerateRequest, encode_image

pytestmark = pytest.mark.usefixtures("one_thread")

POPE = ("playground/data/eval/pope/llava_pope_test.jsonl", "playground/data/eval/pope/val2014")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_checkpoint(DEFAULT_MODEL_PATH, tmp_path_factory.mktemp("hf") / "llava-v1.5-tiny-hf")


def answers(checkpoint, questions, out, *flags):
    assert model_vqa_loader.main(["--model-path", str(checkpoint), "--question-file", str(questions),
                                  "--image-folder", POPE[1], "--answers-file", str(out), "--temperature", "0",
                                  "--max_new_tokens", "4", "--conv-mode", "vicuna_v1", *flags]) == 0
    return [(line["text"], line["metadata"]["image_tokens_kept"])
            for line in map(json.loads, out.read_text().splitlines())]


@pytest.mark.parametrize("method", ["dart", "visionzip"])
def test_the_eval_worker_answers_as_on_the_original_layout(converted, tmp_path, method):
    assert family_for(load_model(str(converted), None, device="cpu").model.config).name == "llava_hf"
    questions = tmp_path / "questions.jsonl"
    with open(POPE[0]) as f:
        questions.write_text("".join(f.readlines()[:6]))
    flags = ["--sparse", "--max_num_trunction", "32", "--pruning_method", method, "--batch-size", "3"]
    original = answers(DEFAULT_MODEL_PATH, questions, tmp_path / "original.jsonl", *flags)
    hf = answers(converted, questions, tmp_path / "hf.jsonl", *flags)
    assert hf == original
    assert {kept for _, kept in hf} == {4 + 8 * 4}
    assert {text for text, _ in hf} <= {"yes", "no"}  # the trained tiny model answers POPE's way


def test_the_model_worker_serves_it_with_its_patch_grid(converted):
    worker = ModelWorker(str(converted), model_name="tiny-hf", device="cpu",
                         dart_defaults={"sparse": True, "max_num_trunction": 32})
    assert (worker.details()["patch_grid"], worker.details()["image_tokens"]) == ([24, 24], 576)
    image = Image.open(sorted(Path(POPE[1]).iterdir())[0]).convert("RGB")
    request = GenerateRequest(model="tiny-hf", messages=[{"role": "user", "content": "<image>\nIs there a cat?"}],
                              images=[encode_image(image)], temperature=0, max_new_tokens=3)
    generation, _ = worker.prepare(request)
    list(generation.start())
    pruning = generation.report.pruning()
    assert (pruning["kept_image_tokens"], pruning["image_tokens"], pruning["patch_grid"]) == (36, 576, [24, 24])
    assert len(pruning["kept_indices"][0]) == 36


def test_conv_mode_chat_template_prompts_the_processors_way(converted, tmp_path):
    """lmms-eval's `llava_hf` protocol, one setting away: the checkpoint's chat template and processor."""
    from llava.eval.core.prompting import CHAT_TEMPLATE
    from llava.model.llava_hf_inputs import processor_protocol_inputs

    loaded = load_model(str(converted), None, device="cpu")
    image = Image.open(sorted(Path(POPE[1]).iterdir())[0]).convert("RGB")
    inputs = loaded.question_inputs("Is there a cat?", [image], CHAT_TEMPLATE)
    reference = processor_protocol_inputs(loaded.processor, ["Is there a cat?"], [[image]])
    assert inputs.input_ids.tolist() == reference["input_ids"][0].tolist()
    assert torch.equal(inputs.image_inputs["pixel_values"], reference["pixel_values"])
    assert inputs.text.startswith("USER: <image>") and "ASSISTANT:" in inputs.text  # no system prompt

    questions = tmp_path / "questions.jsonl"
    with open(POPE[0]) as f:
        questions.write_text("".join(f.readlines()[:2]))
    argv = ["--question-file", str(questions), "--image-folder", POPE[1], "--temperature", "0",
            "--max_new_tokens", "2", "--conv-mode", CHAT_TEMPLATE, "--sparse", "--max_num_trunction", "32"]
    out = tmp_path / "hf.jsonl"
    assert model_vqa_loader.main(["--model-path", str(converted), "--answers-file", str(out), *argv]) == 0
    assert [json.loads(line)["metadata"]["image_tokens_kept"] for line in out.read_text().splitlines()] == [36, 36]
    # An original-layout checkpoint has no chat template of its own: one clear error, exit 2.
    assert model_vqa_loader.main(["--model-path", DEFAULT_MODEL_PATH, "--answers-file", str(tmp_path / "o.jsonl"),
                                  *argv]) == 2


def untimed(text: str) -> str:
    return re.sub(r"\d+\.\d+ ?s\b", "<time>", text)


def test_run_llava_the_cli_and_lmms_eval_answer_as_on_the_original_layout(converted, tmp_path, caplog):
    import io

    from lmms_eval.api.instance import Instance

    from llava.eval.cli import run_llava
    from llava.lmms_plugin.models import LlavaDart
    from llava.serve import cli

    image_file = sorted(Path(POPE[1]).iterdir())[0]
    question = "Is there a cat in the image? Answer the question using a single word or phrase."
    flags = ["--temperature", "0", "--device", "cpu", "--conv-mode", "vicuna_v1", "--sparse", "--max_num_trunction",
             "32"]
    said = {}
    for name, checkpoint in (("original", DEFAULT_MODEL_PATH), ("hf", str(converted))):
        caplog.clear()
        with caplog.at_level("INFO"):
            assert run_llava.main(["--model-path", checkpoint, "--image-file", str(image_file), "--query", question,
                                   "--max_new_tokens", "3", *flags]) == 0
        kept = [untimed(r.message) for r in caplog.records if "image tokens" in r.message]
        out = io.StringIO()
        args = cli.parse_args(["--model-path", checkpoint, "--image-file", str(image_file), "--max-new-tokens", "3",
                               *flags])
        assert cli.chat(args, stdin=io.StringIO(question + "\n\n"), stdout=out) == 0

        model = LlavaDart(pretrained=checkpoint, device="cpu", Sparse=True, max_num_trunction=32)
        model.task_dict = {"t": {"test": {0: {"image": Image.open(image_file).convert("RGB")}}}}
        request = Instance("generate_until", (f"<image>\n{question}", {"max_new_tokens": 3, "temperature": 0},
                                              lambda doc: [doc["image"]], 0, "t", "test"), 0,
                           {"task": "t", "doc_id": 0, "repeats": 1})
        # The embedded default's own path gets a notice line first (its answer instruction is already there).
        chat = [line for line in out.getvalue().splitlines() if not line.startswith("[the embedded default")]
        said[name] = (kept, untimed("\n".join(chat)), model.generate_until([request]), model.kept_image_tokens)
    assert said["hf"] == said["original"]
    assert "kept 36 of 576 image tokens" in said["hf"][0][0] and said["hf"][3] == 36
