"""Deepen a tiny model's language model without changing what it answers: after each chosen decoder layer, insert a
copy of it whose attention and MLP output projections are zero, so that the new layer adds nothing to the residual
stream until training moves those projections (the copy's other weights start from features that already work).

    python scripts/tiny/grow_language_model.py --src checkpoints/tiny-detail-work-1.5 --out WORK/deep-1.5

The source is a training output or a packaged checkpoint (config.json, model.safetensors, tokenizer files,
optionally vision_tower/); everything but the weights and the layer count is copied as it is.
"""

import argparse
import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger("grow_language_model")
LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
ZEROED = ("self_attn.o_proj.weight", "mlp.down_proj.weight")


def grown_order(layers: int, copy_after: list[int]) -> list[tuple[int, bool]]:
    """(source layer, is a zero-output copy) for each layer of the grown model."""
    bad = sorted(set(copy_after) - set(range(layers)))
    if bad:
        raise ValueError(f"--copy-after names layers {bad}; the model has layers 0-{layers - 1}")
    order = []
    for old in range(layers):
        order.append((old, False))
        if old in copy_after:
            order.append((old, True))
    return order


def grown_state(state: dict[str, torch.Tensor], order: list[tuple[int, bool]]) -> dict[str, torch.Tensor]:
    """The state dict with its decoder layers laid out in `order` (copies with zero output projections)."""
    per_layer: dict[int, dict[str, torch.Tensor]] = {}
    grown = {}
    for key, tensor in state.items():
        match = LAYER_KEY.match(key)
        if match:
            per_layer.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
        else:
            grown[key] = tensor
    for new_index, (old, is_copy) in enumerate(order):
        for name, tensor in per_layer[old].items():
            if is_copy:
                tensor = torch.zeros_like(tensor) if name in ZEROED else tensor.clone()
            grown[f"model.layers.{new_index}.{name}"] = tensor
    return grown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--copy-after", type=int, nargs="+", help="layers to copy (default: every layer)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = json.loads((args.src / "config.json").read_text())
    layers = config["num_hidden_layers"]
    copy_after = list(range(layers)) if args.copy_after is None else args.copy_after
    order = grown_order(layers, copy_after)
    if args.out.resolve() == args.src.resolve():
        raise ValueError(f"--out is --src ({args.src}); write the grown model elsewhere")
    state = grown_state(load_file(args.src / "model.safetensors"), order)
    args.out.mkdir(parents=True, exist_ok=True)
    for item in args.src.iterdir():
        if item.name in ("model.safetensors", "config.json") or item.name.startswith("checkpoint-"):
            continue
        target = args.out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    config["num_hidden_layers"] = len(order)
    if "layer_types" in config:
        config["layer_types"] = [config["layer_types"][old] for old, _ in order]
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, args.out / "model.safetensors", metadata={"format": "pt"})
    log.info("%s: %d -> %d decoder layers (copies after %s), written to %s", args.src, layers, len(order),
             sorted(set(copy_after)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
