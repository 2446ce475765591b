"""Broken checkpoint files: each is refused with one error that names the file and what is wrong with it, from
Python (`CheckpointError`) and from a worker's command line (one line on stderr, exit status 2, no traceback)."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file
from test_strict_loading import worker_flags

from llava.eval.workers import model_vqa_loader
from llava.model.builder import load_pretrained_model
from llava.model.strict_loading import CheckpointError


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])  # an interrupted download or copy


def garble(file):
    data = bytearray(file.read_bytes())
    data[8:40] = b"\xff" * 32  # the JSON header, overwritten
    file.write_bytes(bytes(data))


def edit_config(file, **changes):
    config = json.loads(file.read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    file.write_text(json.dumps(config))


def drop_projector_weights(path):
    state = {k: v for k, v in load_file(path / "model.safetensors").items() if "mm_projector" not in k}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


# name -> (how the copy is broken, the file the error must name, what it must say about it)
BREAKAGES = {
    "truncated weights": (lambda p: truncate(p / "model.safetensors"), "model.safetensors", "truncated or damaged"),
    "garbled weights": (lambda p: garble(p / "model.safetensors"), "model.safetensors", "truncated or damaged"),
    "truncated tower weights": (lambda p: truncate(p / "vision_tower" / "model.safetensors"),
                                "vision_tower/model.safetensors", "truncated or damaged"),
    "a config value of the wrong type": (lambda p: edit_config(p / "config.json", num_hidden_layers="four"),
                                         "config.json", "num_hidden_layers.*'four'"),
    "a tower config value of the wrong type": (
        lambda p: edit_config(p / "vision_tower" / "config.json", vision_config={"hidden_size": "wide"}),
        "vision_tower", "hidden_size.*'wide'"),
    "config.json that is not JSON": (lambda p: (p / "config.json").write_text("{not json"), "config.json",
                                     "not valid JSON"),
    "hidden_size not matching the weights": (lambda p: edit_config(p / "config.json", hidden_size=32), "config.json",
                                             r"another shape than the model.s: .*checkpoint \[.*model \[.*hidden_size"),
    # Without its tower the model has no place for the projector; with the projector gone too it loaded, and the
    # first image failed with "'NoneType' object has no attribute 'image_mean'".
    "a LLaVA config without mm_vision_tower": (
        lambda p: (edit_config(p / "config.json", mm_vision_tower=...), drop_projector_weights(p)),
        "config.json", "no mm_vision_tower"),
    "a LLaVA config with a null mm_vision_tower": (
        lambda p: (edit_config(p / "config.json", mm_vision_tower=None), drop_projector_weights(p)),
        "config.json", "no mm_vision_tower"),
    "a LLaVA config without the projector's input width": (lambda p: edit_config(p / "config.json", mm_hidden_size=...),
                                                           "config.json", "mm_hidden_size"),
    "a projector field of the wrong type": (lambda p: edit_config(p / "config.json", mm_vision_select_layer="last"),
                                            "config.json", "mm_vision_select_layer.*'last'"),
}


@pytest.fixture
def broken(tiny_ckpt, tmp_path, request):
    """A copy of the tiny checkpoint broken as BREAKAGES[param] says: (path, file to name, what to say)."""
    breakage, named, problem = BREAKAGES[request.param]
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, path)
    breakage(path)
    return path, named, problem


@pytest.mark.parametrize("broken", list(BREAKAGES), indirect=True)
def test_a_broken_checkpoint_is_a_checkpoint_error_naming_the_file(broken):
    path, named, problem = broken
    with pytest.raises(CheckpointError, match=problem) as error:
        load_pretrained_model(str(path), None, device="cpu")
    assert str(path / named) in str(error.value)


@pytest.mark.parametrize("broken", ["truncated weights", "a config value of the wrong type",
                                    "hidden_size not matching the weights", "a LLaVA config without mm_vision_tower",
                                    "a LLaVA config without the projector's input width"], indirect=True)
def test_the_worker_says_what_is_broken_in_one_line_and_exits_2(broken, tmp_path, capsys):
    path, named, problem = broken
    assert model_vqa_loader.main([*worker_flags(path, tmp_path), "--device", "cpu"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path / named) in errors[0], errors
    assert not (tmp_path / "answers.jsonl").exists() or (tmp_path / "answers.jsonl").read_text() == ""
