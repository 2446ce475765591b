"""scripts/tiny/graft_llava15.py on the two embedded defaults: the graft loads through the strict loader as a LLaVA-1.6
model whose language model is LLaVA-1.5's (same logits on a text prompt), whose tower is LLaVA-1.5's and whose
`image_newline` is LLaVA-1.6's; checkpoints that are not the same network are refused, naming what differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.constants import DEFAULT_MODEL_PATH
from llava.model.builder import load_pretrained_model

CHECKPOINTS = Path(DEFAULT_MODEL_PATH).parent
LLAVA15, LLAVA16 = CHECKPOINTS / "llava-v1.5-tiny", CHECKPOINTS / "llava-v1.6-tiny"


def load(path: Path):
    tokenizer, model, _, _ = load_pretrained_model(str(path), None, device="cpu")
    return tokenizer, model.float().eval()


def test_the_graft_is_llava15_read_as_llava16(tmp_path, tiny_script):
    out = tmp_path / "grafted"
    tiny_script("graft_llava15").graft(LLAVA15, LLAVA16, out)
    assert json.loads((out / "config.json").read_text()) == json.loads((LLAVA16 / "config.json").read_text())
    assert not (out / "README.md").exists()

    tokenizer, grafted = load(out)
    _, llava15 = load(LLAVA15)
    _, llava16 = load(LLAVA16)
    ids = tokenizer("What is the value of the red bar?", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = grafted(input_ids=ids).logits
        assert torch.equal(logits, llava15(input_ids=ids).logits)
        assert not torch.allclose(logits, llava16(input_ids=ids).logits)
    assert torch.equal(grafted.get_model().image_newline, llava16.get_model().image_newline)
    tower, donor = (m.get_vision_tower().vision_tower.state_dict() for m in (grafted, llava15))
    assert tower and all(torch.equal(tower[k], donor[k]) for k in tower)
    assert sorted(load_file(out / "vision_tower" / "model.safetensors")) == sorted(
        load_file(LLAVA16 / "vision_tower" / "model.safetensors"))  # the vision half only, as LLaVA-1.6's


def copy_with_config(source: Path, folder: Path, **changed) -> Path:
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changed}))
    return folder


def test_other_networks_are_refused_naming_the_difference(tmp_path, tiny_script):
    graft = tiny_script("graft_llava15").graft
    wider = copy_with_config(LLAVA15, tmp_path / "wider", hidden_size=256)
    with pytest.raises(ValueError, match=r"not the same network: config.json differs in hidden_size \(256 / 128\)"):
        graft(wider, LLAVA16, tmp_path / "out")
    other_tokenizer = copy_with_config(LLAVA15, tmp_path / "tokenizer")
    (other_tokenizer / "tokenizer.model").write_bytes(b"another tokenizer")
    with pytest.raises(ValueError, match="other tokenizers"):
        graft(other_tokenizer, LLAVA16, tmp_path / "out")
    assert not (tmp_path / "out").exists()
