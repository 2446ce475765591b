r"""Turn a trained stage-2 output into the portable, committed tiny checkpoint.

    python scripts/tiny/package_checkpoint.py --trained WORK/stage2 --vision-tower WORK/vision_tower \
        --out checkpoints/llava-v1.5-tiny [--dtype float16]

The result is the original LLaVA layout with the tower inside it: `mm_vision_tower: "vision_tower"` is
resolved against the checkpoint directory by the loader, so the directory works wherever it is cloned. A run
trained with --unfreeze_mm_vision_tower carries its tower in its weights: those replace the copy's vision tensors.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHT_FILES = ("model.safetensors", "vision_tower/model.safetensors")
COPIED = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json",
          "generation_config.json")


# The trainer's intermediate checkpoints (checkpoint-N) also hold the frozen tower under this prefix, and every
# checkpoint of a run with --unfreeze_mm_vision_tower the trained one; the packaged layout keeps the tower in
# vision_tower/ only (the loader refuses tensors that have no place in the model).
TOWER_PREFIX = "model.vision_tower."


def check_tower_copy(trained_weights: Path, vision_tower: Path, dtype: torch.dtype) -> None:
    """A checkpoint-N's copy of the tower must be the tower packaged beside it (in the packaged dtype) when its config
    does not say the tower was trained: a tower changed some other way would be lost without a word."""
    copy = tower_tensors(trained_weights)
    if not copy:
        return
    tower = load_file(vision_tower / "model.safetensors")

    def same(name: str, tensor: torch.Tensor) -> bool:
        # The trainer saves CLIPVisionModel's tensors without their "vision_model." (the tower file's names).
        original = tower.get(name, tower.get(f"vision_model.{name}"))
        return original is not None and original.shape == tensor.shape and torch.equal(original.to(dtype),
                                                                                       tensor.to(dtype))

    differing = sorted(k for k, v in copy.items() if not same(k, v))
    if differing:
        raise ValueError(f"{trained_weights} holds a vision tower that is not {vision_tower} ({len(differing)} of its "
                         f"{len(copy)} tensors differ, e.g. {differing[0]}): was the tower trained? Package it with "
                         "--vision-tower pointing at that tower, saved on its own")


def tower_tensors(trained_weights: Path) -> dict[str, torch.Tensor]:
    """The tower's tensors in a checkpoint's weights, named as in CLIPVisionModel's state dict."""
    return {k[len(TOWER_PREFIX):].removeprefix("vision_tower."): v for k, v in load_file(trained_weights).items()
            if k.startswith(TOWER_PREFIX)}


def write_trained_tower(trained_weights: Path, tower_file: Path) -> None:
    """A tower trained with the rest (the config's `unfreeze_mm_vision_tower`) replaces the packaged tower's
    vision tensors: the tiny checkpoints keep their tower in vision_tower/, whether it was trained or not."""
    trained, tower = tower_tensors(trained_weights), load_file(tower_file)
    if not trained:
        raise ValueError(f"{trained_weights}: the config sets unfreeze_mm_vision_tower, but it holds no tower tensors "
                         f"({TOWER_PREFIX}*)")
    for name, tensor in trained.items():
        target = name if name in tower else f"vision_model.{name}"
        if target not in tower or tower[target].shape != tensor.shape:
            raise ValueError(f"{trained_weights}: its tower tensor {name} {tuple(tensor.shape)} has no place in "
                             f"{tower_file}: was it trained from another tower?")
        tower[target] = tensor
    save_file({k: v.contiguous() for k, v in tower.items()}, str(tower_file), metadata={"format": "pt"})


def convert(path: Path, dtype: torch.dtype) -> None:
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in load_file(path).items()
             if not k.startswith(TOWER_PREFIX)}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


def package(trained: Path, vision_tower: Path, out: Path, dtype: str, tokenizer_model: Path | None = None) -> int:
    config = json.loads((trained / "config.json").read_text())
    tower_trained = bool(config.get("unfreeze_mm_vision_tower"))
    if not tower_trained:
        check_tower_copy(trained / "model.safetensors", vision_tower, getattr(torch, dtype))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in COPIED + ("model.safetensors",):
        if (trained / name).is_file():
            shutil.copy(trained / name, out / name)
    if tokenizer_model is not None and not (out / "tokenizer.model").exists():
        # transformers 5 saves tokenizer.json only; LLaVA checkpoints carry the SentencePiece model too.
        shutil.copy(tokenizer_model, out / "tokenizer.model")
    shutil.copytree(vision_tower, out / "vision_tower")
    if tower_trained:
        write_trained_tower(trained / "model.safetensors", out / "vision_tower" / "model.safetensors")
        config["unfreeze_mm_vision_tower"] = False  # its weights are now those of vision_tower/
    config["mm_vision_tower"] = "vision_tower"
    config["torch_dtype"] = dtype
    config.pop("dtype", None)
    config.pop("_name_or_path", None)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in WEIGHT_FILES:
        convert(out / name, getattr(torch, dtype))
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", type=Path, required=True)
    parser.add_argument("--vision-tower", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer-model", type=Path, default=None, help="SentencePiece model to ship beside")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    args = parser.parse_args(argv)
    size = package(args.trained, args.vision_tower, args.out, args.dtype, args.tokenizer_model)
    print(f"packaged {args.trained} + {args.vision_tower} into {args.out} ({size / 2**20:.1f} MiB, {args.dtype})")


if __name__ == "__main__":
    main()
