"""scripts/tiny/package_checkpoint.py on what training writes: the final output (language model and projector only)
and an intermediate `checkpoint-N`, which also holds the frozen tower under `model.vision_tower.`. Both package
into the committed layout that the strict loader accepts, with the trained weights in float16."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llava.model.builder import load_pretrained_model
from llava.model.tiny_checkpoint import build_tiny_checkpoint


def trainer_copy(tower: dict) -> dict:
    """The tower's tensors as the trainer's checkpoint-N holds them (as read from one): under
    `model.vision_tower.vision_tower.`, without CLIPVisionModel's "vision_model." prefix."""
    return {f"model.vision_tower.vision_tower.{k.removeprefix('vision_model.')}": v for k, v in tower.items()}


@pytest.mark.parametrize("saved_by", ["final save", "checkpoint-N"])
def test_a_training_output_packages_into_the_layout_the_loader_accepts(tmp_path, tiny_script, saved_by):
    trained = build_tiny_checkpoint(tmp_path / "trained", seed=3)
    weights = load_file(trained / "model.safetensors")
    if saved_by == "checkpoint-N":  # the trainer's checkpoints keep every module's weights, the frozen tower's too
        tower = load_file(trained / "vision_tower" / "model.safetensors")
        save_file({**weights, **trainer_copy(tower)}, str(trained / "model.safetensors"))

    out = tmp_path / "packaged"
    tiny_script("package_checkpoint").package(trained, trained / "vision_tower", out, "float16")

    packaged = load_file(out / "model.safetensors")
    assert sorted(packaged) == sorted(weights)
    assert all(packaged[k].dtype == torch.float16 and torch.equal(packaged[k], weights[k].half()) for k in weights)
    assert json.loads((out / "config.json").read_text())["mm_vision_tower"] == "vision_tower"
    _, model, _, _ = load_pretrained_model(str(out), None, device="cpu")  # strict: no weight left out or unplaced
    assert torch.equal(model.get_model().embed_tokens.weight.half(), weights["model.embed_tokens.weight"].half())


def test_a_checkpoint_whose_tower_was_trained_is_refused_naming_a_tensor(tmp_path, tiny_script):
    trained = build_tiny_checkpoint(tmp_path / "trained", seed=3)
    weights = load_file(trained / "model.safetensors")
    tower = load_file(trained / "vision_tower" / "model.safetensors")
    moved = "vision_model.post_layernorm.weight"
    tower_copy = {**tower, moved: tower[moved] + 0.5}  # as a tower trained with the rest would be
    save_file({**weights, **trainer_copy(tower_copy)}, str(trained / "model.safetensors"))

    out = tmp_path / "packaged"
    with pytest.raises(ValueError, match=f"1 of its {len(tower)} tensors differ, e.g. post_layernorm.weight"):
        tiny_script("package_checkpoint").package(trained, trained / "vision_tower", out, "float16")
    assert not out.exists()  # refused before anything is written
