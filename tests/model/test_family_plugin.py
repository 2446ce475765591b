"""A family needs only its module: a minimal family registered here drives every consumer.

The family is a plain transformers text model (LLaMA) with an image placeholder: its "processor" turns an image
into a 6 x 6 grid of tokens from a reserved id range (one per cell, by the cell's brightness), so an image is a
run of ordinary tokens, and the pruning engine is attached to the library's own `LlamaModel`. Nothing outside
this file knows it: the eval worker, run_llava, the CLI, the model worker, the lmms-eval model, the sweep and
`python -m llava.model.families` all reach it through the registry.
"""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from llava.eval.workers import model_vqa_loader
from llava.eval.cli import run_llava
from llava.eval.sweep import checkpoint_family
from llava.model.families import Family, ModelInputs, families, load_model, register, unregister
from llava.model.families import __main__ as families_cli
from llava.model.pruning import PruningRecord, make_dart_config
from llava.model.pruning.attach import attach_engine
from llava.model.pruning.backends import RotaryDecoderBackend
from llava.model.strict_loading import load_strictly
from llava.model.tiny_checkpoint import TOKENIZER_MODEL
from llava.serve import cli
from llava.serve.model_worker import ModelWorker
from llava.serve.protocol import GenerateRequest, encode_image

GRID = 6
FIRST_IMAGE_ID = 400  # ids 400..463 stand for brightness levels; a run of them is an image
LEVELS = 64


class PlaceholderConfig(LlamaConfig):
    model_type = "placeholder_vlm"


class PlaceholderVLM(LlamaForCausalLM):
    """LLaMA with the pruning engine on its text model, the image spans read from the prompt at prefill."""

    config_class = PlaceholderConfig

    def __init__(self, config):
        super().__init__(config)
        attach_engine(self.model, lambda: RotaryDecoderBackend(self.model))

    def forward(self, input_ids=None, pruning_record: PruningRecord | None = None, image_spans=None, **kwargs):
        cache = kwargs.get("past_key_values")
        if cache is None or cache.get_seq_length() == 0:
            image_spans = [_runs((row >= FIRST_IMAGE_ID) & (row < FIRST_IMAGE_ID + LEVELS)) for row in input_ids]
        else:
            image_spans = None
        return super().forward(input_ids=input_ids, pruning_record=pruning_record or PruningRecord(),
                               image_spans=image_spans, **kwargs)


def _runs(flags: torch.Tensor) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def image_tokens(image: Image.Image) -> list[int]:
    cells = image.convert("L").resize((GRID, GRID), Image.BOX)
    return [FIRST_IMAGE_ID + value * LEVELS // 256 for value in cells.tobytes()]


class PlaceholderFamily(Family):
    name = "placeholder"
    model_types = ("placeholder_vlm",)
    image_view = "resize"

    def load(self, model_path, config, load_kwargs, options):
        model = load_strictly(PlaceholderVLM, model_path, config=config, **load_kwargs)
        return LlamaTokenizer.from_pretrained(model_path), model, None, 2048

    def conv_mode(self, loaded, requested, model_name):
        return requested or "vicuna_v1"

    def question_inputs(self, loaded, question, images, conv_mode):
        return self.prompt_inputs(loaded, "<image>\n" * len(images) + question, images)

    def chat_inputs(self, loaded, messages, images, conv_mode):
        return self.prompt_inputs(loaded, " ".join(m["content"] for m in messages), images), None

    def prompt_inputs(self, loaded, prompt, images):
        pieces = prompt.split("<image>")
        ids = loaded.tokenizer(pieces[0]).input_ids
        for image, piece in zip(images, pieces[1:]):
            ids += image_tokens(image) + loaded.tokenizer(piece, add_special_tokens=False).input_ids
        return ModelInputs(torch.tensor(ids), image_sizes=[image.size for image in images], sequence_length=len(ids),
                           image_tokens=[GRID * GRID] * len(images), text=prompt)

    def image_grids(self, loaded, inputs):
        return [[GRID, GRID]] * len(inputs.image_sizes)

    def describe_images(self, loaded):
        return {"image_tokens": GRID * GRID, "patch_grid": [GRID, GRID], "image_aspect_ratio": self.image_view}


@pytest.fixture(scope="module")
def family():
    AutoConfig.register(PlaceholderConfig.model_type, PlaceholderConfig, exist_ok=True)
    registered = register(PlaceholderFamily())
    yield registered
    unregister(registered)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, family):
    path = tmp_path_factory.mktemp("placeholder") / "placeholder-vlm"
    torch.manual_seed(0)
    config = PlaceholderConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    PlaceholderVLM(config).save_pretrained(path)
    LlamaTokenizer(vocab_file=str(TOKENIZER_MODEL)).save_pretrained(path)
    return path


def scene(seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(48, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


DART = ["--sparse", "--pruned_layer", "2", "--max_num_trunction", "16"]


@pytest.fixture(scope="module")
def kept(checkpoint):
    """What the engine keeps of each test image's 36 tokens for "What is it?" when the model is called directly
    (DART's pivots may pick the same token, so fewer than 4 + 8 x 2 can remain)."""
    loaded = load_model(str(checkpoint), None, device="cpu")
    counts = {}
    for seed in (0, 1):
        record = PruningRecord(dart_config=make_dart_config(K=2, max_num_trunction=16))
        inputs = loaded.generate_inputs([loaded.question_inputs("What is it?", [scene(seed)], None)])
        with torch.inference_mode():
            loaded.model(**inputs, pruning_record=record)
        counts[seed] = record.num_kept_image_tokens()
        assert record.pruned and 4 + 8 <= counts[seed] <= 4 + 8 * 2
    return counts


def test_the_registry_finds_the_family(family, checkpoint, capsys):
    assert family in families() and checkpoint_family(str(checkpoint))[0] is family
    assert families_cli.main([str(checkpoint)]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "placeholder"


def test_the_eval_worker_prunes_it(family, checkpoint, kept, tmp_path):
    scene(0).save(tmp_path / "a.png")
    scene(1).save(tmp_path / "b.png")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question_id": i, "image": name, "text": "What is it?"}) + "\n"
                                 for i, name in enumerate(["a.png", "b.png"])))
    answers = {}
    for batch in ("1", "2"):
        out = tmp_path / f"answers{batch}.jsonl"
        assert model_vqa_loader.main(["--model-path", str(checkpoint), "--question-file", str(questions),
                                      "--image-folder", str(tmp_path), "--answers-file", str(out), "--temperature",
                                      "0", "--max_new_tokens", "3", "--batch-size", batch, *DART]) == 0
        answers[batch] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["text"] for a in answers["1"]] == [a["text"] for a in answers["2"]]
    assert [(a["metadata"]["image_tokens_kept"], a["metadata"]["image_tokens"]) for a in answers["1"]] == [
        (kept[0], 36), (kept[1], 36)]


def test_run_llava_and_the_cli_answer_with_pruning(family, checkpoint, kept, tmp_path, caplog):
    scene(0).save(tmp_path / "a.png")
    caplog.set_level("INFO")
    assert run_llava.main(["--model-path", str(checkpoint), "--image-file", str(tmp_path / "a.png"), "--query",
                           "What is it?", "--temperature", "0", "--max_new_tokens", "3", "--device", "cpu", *DART]) == 0
    assert f"kept {kept[0]} of 36 image tokens" in caplog.text

    out = io.StringIO()
    args = cli.parse_args(["--model-path", str(checkpoint), "--image-file", str(tmp_path / "a.png"), "--device", "cpu",
                           "--temperature", "0", "--max-new-tokens", "3", *DART])
    assert cli.chat(args, stdin=io.StringIO("What is it?\n\n"), stdout=out) == 0
    assert f"kept {kept[0]} of 36 image tokens" in out.getvalue()


def test_the_model_worker_serves_it(family, checkpoint, kept):
    worker = ModelWorker(str(checkpoint), model_name="placeholder", device="cpu",
                         dart_defaults={"sparse": True, "pruned_layer": 2, "max_num_trunction": 16})
    details = worker.details()
    assert (details["image_tokens"], details["patch_grid"], details["prompt_format"]) == (36, [6, 6], "prompt")
    request = GenerateRequest(model="placeholder", prompt="<image>\nWhat is it?", images=[encode_image(scene(0))],
                              temperature=0, max_new_tokens=3)
    generation, usage = worker.prepare(request)
    list(generation.start())
    pruning = generation.report.pruning()
    assert usage["prompt_tokens"] == generation.inputs.sequence_length
    assert (pruning["kept_image_tokens"], pruning["image_tokens"], pruning["patch_grid"]) == (kept[0], 36, [6, 6])
    assert all(0 <= i < 36 for i in pruning["kept_indices"][0])


def test_the_lmms_eval_model_takes_it(family, checkpoint, kept):
    from lmms_eval.api.instance import Instance

    from llava.lmms_plugin.models import LlavaDart

    model = LlavaDart(pretrained=str(checkpoint), device="cpu", Sparse=True, pruned_layer=2, max_num_trunction=16)
    model.task_dict = {"t": {"test": {0: {"image": scene(0)}}}}
    request = Instance("generate_until", ("What is it?", {"max_new_tokens": 3, "temperature": 0},
                                          lambda doc: [doc["image"]], 0, "t", "test"), 0,
                       {"task": "t", "doc_id": 0, "repeats": 1})
    (text,) = model.generate_until([request])
    assert isinstance(text, str)
    assert (model.kept_image_tokens, model.image_tokens) == (kept[0], 36)


def test_the_question_reaches_the_pruning_record_as_its_instruction(checkpoint, monkeypatch):
    """The methods that prune for the question (CDPruner) read it from the call's record: the consumers put the
    question, or a chat's last user message, without its image placeholders, there."""
    from llava.eval.core.common import generate_answers

    loaded = load_model(str(checkpoint), None, device="cpu")
    asked = loaded.question_inputs("<image>\nWhat is it?", [scene(0)], None)
    chatted, _ = loaded.chat_inputs([{"role": "user", "content": "<image>\nFirst?"},
                                     {"role": "assistant", "content": "A square."},
                                     {"role": "user", "content": "And the colour?"}], [scene(1)], None)
    assert (asked.instruction, chatted.instruction) == ("What is it?", "And the colour?")
    seen = []
    library_generate = loaded.model.generate

    def generate(*args, pruning_record=None, **kwargs):
        seen.append(list(pruning_record.instructions))
        return library_generate(*args, pruning_record=pruning_record, **kwargs)

    monkeypatch.setattr(loaded.model, "generate", generate)
    generate_answers(loaded, [asked, chatted], {"max_new_tokens": 2, "do_sample": False})
    assert seen == [["What is it?", "And the colour?"]]
