"""scripts/tiny/grow_language_model.py: a deeper language model that answers exactly as the shallower one did
until it is trained, loaded through the strict loader (no weight missing or left over)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from llava.model.builder import load_pretrained_model
from llava.model.tiny_checkpoint import build_tiny_checkpoint


def logits(path, ids, pixels):
    _, model, _, _ = load_pretrained_model(str(path), None, device="cpu")
    with torch.inference_mode():
        return model(input_ids=ids, images=pixels.to(model.dtype)).logits.float(), model.config.num_hidden_layers


def test_the_grown_model_has_the_copies_and_the_same_outputs(tmp_path, tiny_script):
    src = build_tiny_checkpoint(tmp_path / "src", seed=5, num_layers=2)
    out = tmp_path / "grown"
    assert tiny_script("grow_language_model").main(["--src", str(src), "--out", str(out)]) == 0

    ids = torch.tensor([[1, 31, 29, -200, 13, 45, 12, 33]])  # text, the image placeholder, text
    pixels = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    before, layers_before = logits(src, ids, pixels)
    after, layers_after = logits(out, ids, pixels)
    assert (layers_before, layers_after) == (2, 4)
    assert torch.allclose(before, after, atol=1e-3)  # float16 weights either way; zero outputs add nothing

    grown, source = load_file(out / "model.safetensors"), load_file(src / "model.safetensors")
    query = "self_attn.q_proj.weight"
    assert torch.equal(grown[f"model.layers.1.{query}"], source[f"model.layers.0.{query}"])
    assert torch.equal(grown["model.layers.2.mlp.up_proj.weight"], source["model.layers.1.mlp.up_proj.weight"])
    assert not grown["model.layers.3.mlp.down_proj.weight"].any()
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 4


def test_one_copy_after_each_named_layer_however_often_named(tiny_script):
    order = tiny_script("grow_language_model").grown_order(3, [2, 0, 2])
    assert order == [(0, False), (0, True), (1, False), (2, False), (2, True)]


def test_a_layer_the_model_does_not_have_or_its_own_source_is_refused(tmp_path, tiny_script):
    src = build_tiny_checkpoint(tmp_path / "src", seed=5, num_layers=2)
    grow = tiny_script("grow_language_model").main
    with pytest.raises(ValueError, match=r"names layers \[2\]; the model has layers 0-1"):
        grow(["--src", str(src), "--out", str(tmp_path / "o"), "--copy-after", "2"])
    with pytest.raises(ValueError, match="--out is --src"):
        grow(["--src", str(src), "--out", str(src)])
