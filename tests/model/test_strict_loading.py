"""Strict loading: a checkpoint missing a weight, holding a tensor the model has no place for, or missing its
tokenizer files is refused with the names of what is wrong, from Python and from a worker's command line."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from suite_timeouts import hang_timeout

from llava.model.builder import load_pretrained_model
from llava.model.strict_loading import HARMLESS, CheckpointError
from llava.model.tiny_qwen import build_tiny_qwen_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def edit_weights(path, drop=(), add=None):
    state = load_file(path / "model.safetensors")
    for key in drop:
        del state[key]
    state.update(add or {})
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


def copy_of(source, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp("qwen") / "qwen2-vl", "qwen2_vl", seed=0)


def test_a_missing_weight_is_named(tiny_ckpt, tmp_path):
    path = copy_of(tiny_ckpt, tmp_path, "missing")
    edit_weights(path, drop=["model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(CheckpointError, match=r"1 weight\(s\) of the model are not in the checkpoint.*"
                                              r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_pretrained_model(str(path), None, device="cpu")


def test_an_unknown_tensor_is_named(tiny_ckpt, tmp_path):
    path = copy_of(tiny_ckpt, tmp_path, "unexpected")
    edit_weights(path, add={"model.stray.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) of the checkpoint have no place in the model: "
                                              r"model\.stray\.weight"):
        load_pretrained_model(str(path), None, device="cpu")


def test_the_listed_harmless_tensors_load(tiny_ckpt, tmp_path):
    """LLaVA-1.5's release carries `rotary_emb.inv_freq` buffers (transformers 4.31): computed, not loaded."""
    assert any(rule.pattern.startswith("rotary_emb") for rule in HARMLESS)
    path = copy_of(tiny_ckpt, tmp_path, "inv-freq")
    edit_weights(path, add={f"model.layers.{i}.self_attn.rotary_emb.inv_freq": torch.ones(8) for i in range(4)})
    load_pretrained_model(str(path), None, device="cpu")


@pytest.mark.parametrize("removed", [("tokenizer.model", "tokenizer.json"), ("tokenizer_config.json",)])
def test_missing_tokenizer_files_are_an_error(tiny_ckpt, tmp_path, removed):
    path = copy_of(tiny_ckpt, tmp_path, "no-tokenizer")
    for name in removed:
        (path / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_pretrained_model(str(path), None, device="cpu")


def test_a_qwen_checkpoint_missing_a_weight_or_its_tokenizer_is_refused(qwen_ckpt, tmp_path):
    path = copy_of(qwen_ckpt, tmp_path, "qwen-missing")
    state = load_file(path / "model.safetensors")
    dropped = next(key for key in sorted(state) if key.endswith("mlp.gate_proj.weight"))
    edit_weights(path, drop=[dropped])
    with pytest.raises(CheckpointError, match="not in the checkpoint"):
        load_pretrained_model(str(path), None, device="cpu")
    path = copy_of(qwen_ckpt, tmp_path, "qwen-no-tokenizer")
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (path / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="no vocabulary"):
        load_pretrained_model(str(path), None, device="cpu")


def worker_flags(model_path, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question_id": 0, "image": "red.png", "text": "What is this?"}\n')
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "red.png")
    return ["--model-path", str(model_path), "--question-file", str(questions), "--image-folder", str(tmp_path),
            "--answers-file", str(tmp_path / "answers.jsonl"), "--conv-mode", "vicuna_v1", "--temperature", "0",
            "--max_new_tokens", "2"]


def run_module(module, flags):
    """`python -m module flags...`, as a user types it."""
    return subprocess.run([sys.executable, "-m", module, *flags], input="", capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=hang_timeout(900))


def break_checkpoint(path, breakage, named):
    if breakage == "missing":
        edit_weights(path, drop=[named])
    elif breakage == "unexpected":
        edit_weights(path, add={named: torch.zeros(2)})
    else:
        (path / named).unlink()


@pytest.mark.slow
def test_the_worker_command_line_names_a_missing_weight_and_exits_2(tiny_ckpt, tmp_path):
    path = copy_of(tiny_ckpt, tmp_path, "missing")
    break_checkpoint(path, "missing", "model.layers.0.self_attn.q_proj.weight")
    result = run_module("llava.eval.workers.model_vqa_loader", worker_flags(path, tmp_path))
    assert result.returncode == 2, result.stderr
    assert "model.layers.0.self_attn.q_proj.weight" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "answers.jsonl").exists() or (tmp_path / "answers.jsonl").read_text() == ""


@pytest.mark.parametrize("breakage, named", [("unexpected", "model.stray.weight"), ("tokenizer", "tokenizer_config.json")])
def test_the_worker_names_an_unknown_tensor_or_missing_tokenizer_and_exits_2(tiny_ckpt, tmp_path, capsys, breakage,
                                                                              named):
    """The worker's `main` (what `python -m` runs, in this process to save an interpreter start)."""
    from llava.eval.workers import model_vqa_loader

    path = copy_of(tiny_ckpt, tmp_path, breakage)
    break_checkpoint(path, breakage, named)
    assert model_vqa_loader.main(worker_flags(path, tmp_path)) == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["run_llava", "cli"])
def test_run_llava_and_the_cli_refuse_a_checkpoint_missing_a_weight(tiny_ckpt, tmp_path, capsys, entry):
    from llava.eval.cli import run_llava
    from llava.serve import cli

    path = copy_of(tiny_ckpt, tmp_path, "missing")
    break_checkpoint(path, "missing", "model.mm_projector.0.weight")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "red.png")
    flags = ["--model-path", str(path), "--image-file", str(tmp_path / "red.png"), "--device", "cpu"]
    main = run_llava.main if entry == "run_llava" else cli.main
    assert main(flags + (["--query", "What is this?"] if entry == "run_llava" else [])) == 2
    assert "model.mm_projector.0.weight" in capsys.readouterr().err


@pytest.mark.slow
def test_the_model_worker_refuses_a_checkpoint_missing_a_weight(tiny_ckpt, tmp_path):
    path = copy_of(tiny_ckpt, tmp_path, "missing")
    break_checkpoint(path, "missing", "model.mm_projector.0.weight")
    result = run_module("llava.serve.model_worker",
                        ["--model-path", str(path), "--no-register", "--device", "cpu", "--port", "0"])
    assert result.returncode == 2, result.stderr
    assert "model.mm_projector.0.weight" in result.stderr and "Traceback" not in result.stderr
