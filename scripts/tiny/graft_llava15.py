r"""A tiny LLaVA-1.6 checkpoint whose language model, projector and vision tower are a tiny LLaVA-1.5 checkpoint's.

    python scripts/tiny/graft_llava15.py --llava15 checkpoints/llava-v1.5-tiny-detail \
        --llava16 checkpoints/llava-v1.6-tiny-detail --out WORK/grafted

The two tiny families are the same network but for the image handling: one language model, projector, tokenizer and
tower configuration; LLaVA-1.6 adds `model.image_newline` (the token that closes each row of its anyres grid) and
reads the image at several resolutions. The graft is the LLaVA-1.6 folder (its config, tokenizer, generation
config) with every tensor taken from the LLaVA-1.5 checkpoint but `model.image_newline`, kept. A round of anyres
training (`train_detail.sh 1.6` with FROM set to the graft) then teaches the language model to read the extra
tokens: the LLaVA-1.5 candidate had read four times as many fine-detail pages as LLaVA-1.6's own rounds
(docs/tiny_model_history.md, "Round 6"). Anything else that differs between the two (a config field, a tensor's
shape or dtype, the tokenizer, the tower's configuration) is an error.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

LLAVA16_ONLY_TENSORS = ("model.image_newline",)
# The config fields of the image handling: LLaVA-1.6's are kept. Every other field must be the same in both.
IMAGE_FIELDS = ("image_aspect_ratio", "image_grid_pinpoints", "mm_patch_merge_type", "tokenizer_model_max_length")
# Fields that say nothing about the network (training bookkeeping, the tower's own text half).
IGNORED_FIELDS = ("_name_or_path", "mm_vision_tower_lr", "unfreeze_mm_vision_tower", "transformers_version")
TOWER_WEIGHTS = "vision_tower/model.safetensors"
# LLaVA-1.5's tiny tower carries CLIP's text half too (scripts/tiny/add_clip_text_half.py: CDPruner embeds the
# instruction with it); LLaVA-1.6's has the vision half only, and its tensors are what the graft takes.
CLIP_TEXT_HALF = ("text_model.", "text_projection.", "logit_scale", "visual_projection.")


def _differing_fields(a: dict, b: dict, skip: tuple[str, ...]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))


def check_same_network(llava15: Path, llava16: Path) -> None:
    config15, config16 = (json.loads((d / "config.json").read_text()) for d in (llava15, llava16))
    differing = _differing_fields(config15, config16, IMAGE_FIELDS + IGNORED_FIELDS)
    if differing:
        raise ValueError(f"{llava15} and {llava16} are not the same network: config.json differs in "
                         + ", ".join(f"{k} ({config15.get(k)!r} / {config16.get(k)!r})" for k in differing))
    towers = [json.loads((d / "vision_tower" / "config.json").read_text()).get("vision_config")
              for d in (llava15, llava16)]
    if towers[0] != towers[1]:
        raise ValueError(f"{llava15} and {llava16} have towers of other shapes (vision_tower/config.json's "
                         f"vision_config: {_differing_fields(towers[0], towers[1], ())})")
    if (llava15 / "tokenizer.model").read_bytes() != (llava16 / "tokenizer.model").read_bytes():
        raise ValueError(f"{llava15} and {llava16} have other tokenizers (tokenizer.model differs)")


def grafted_tensors(donor_file: Path, host_file: Path, keep: tuple[str, ...], dropped: tuple[str, ...] = ()) -> dict:
    """The host's tensors, each replaced by the donor's of the same name but those in `keep`; the donor must have
    every other host tensor, of the same shape and dtype, and no tensor the host lacks but those named `dropped*`."""
    donor, host = load_file(donor_file), load_file(host_file)
    missing = sorted(set(host) - set(donor) - set(keep))
    extra = sorted(k for k in set(donor) - set(host) if not k.startswith(dropped))
    mismatched = sorted(k for k in set(host) & set(donor) - set(keep)
                        if (host[k].shape, host[k].dtype) != (donor[k].shape, donor[k].dtype))
    if missing or extra or mismatched:
        raise ValueError(f"{donor_file} does not fit {host_file}: missing {missing}, extra {extra}, "
                         f"other shape or dtype {mismatched}")
    return {k: (host[k] if k in keep else donor[k]).contiguous() for k in host}


def graft(llava15: Path, llava16: Path, out: Path) -> int:
    check_same_network(llava15, llava16)
    model = grafted_tensors(llava15 / "model.safetensors", llava16 / "model.safetensors", LLAVA16_ONLY_TENSORS)
    tower = grafted_tensors(llava15 / TOWER_WEIGHTS, llava16 / TOWER_WEIGHTS, (), CLIP_TEXT_HALF)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(llava16, out, ignore=shutil.ignore_patterns("README.md"))  # the card is LLaVA-1.6's, not this
    save_file(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    save_file(tower, str(out / TOWER_WEIGHTS), metadata={"format": "pt"})
    return len(model) + len(tower)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llava15", type=Path, required=True, help="the donor: a tiny LLaVA-1.5 checkpoint")
    parser.add_argument("--llava16", type=Path, required=True, help="the host: a tiny LLaVA-1.6 checkpoint")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    n = graft(args.llava15, args.llava16, args.out)
    print(f"grafted {n} tensors of {args.llava15} into {args.llava16}'s layout: {args.out} "
          f"(kept {', '.join(LLAVA16_ONLY_TENSORS)})")


if __name__ == "__main__":
    main()
