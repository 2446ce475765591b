"""Training data for the tiny LLaVA: images plus JSON in LLaVA's conversation format.

Stage 0 (text only, for the tiny model whose language model starts from random weights): the scene's caption
in text, then questions about it, so the language model learns to compare a question with a context where
steps are cheap (a few hundred tokens, without 576 image tokens). Stage 1 (pretraining, as LLaVA-Pretrain's
blip_laion_cc_sbu_558k.json): one human turn holding `<image>` and a short instruction, one gpt turn with
the caption. Stage 2 (instruction tuning, as llava_v1_5_mix665k.json):
several question/answer turns per image, `<image>` only in the first human turn, plus a few text-only
conversations (no "image" key) as the real mix has.

Scene i of a seed depends only on (seed, i), so stage 1 and stage 2 with the same seed share their images
(`images/seed<seed>/<i>.png`), and a larger set extends a smaller one. Text uses its own per-stage stream.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.data.questions import (
    CAPTION_INSTRUCTIONS, QA, QUESTION_TYPES, caption, keep_options, knowledge_question, prompt, qa_pairs,
)
from llava.data.scenes import Scene, sample_scene
from llava.data.shapes import encode, render

STAGE_FILES = {0: "llava_tiny_described.json", 1: "llava_tiny_pretrain.json", 2: "llava_tiny_finetune.json"}


def scene_rng(seed: int, index: int) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across runs and platforms.
    return random.Random(f"scene/{seed}/{index}")


def text_rng(seed: int, index: int, stage: int) -> random.Random:
    return random.Random(f"text/{seed}/{index}/{stage}")


def training_scene(seed: int, index: int) -> Scene:
    return sample_scene(scene_rng(seed, index), split="train")


def pretrain_record(record_id: str, image: str, scene: Scene, rng: random.Random) -> dict:
    """Stage 1: `<image>` with a short instruction (before or after it, as in LLaVA-Pretrain), then the caption."""
    instruction = rng.choice(CAPTION_INSTRUCTIONS)
    human = f"{DEFAULT_IMAGE_TOKEN}\n{instruction}" if rng.random() < 0.5 else f"{instruction}\n{DEFAULT_IMAGE_TOKEN}"
    return {
        "id": record_id,
        "image": image,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": caption(scene, rng)}],
    }


def _turns(qas: list[QA], context_style: str) -> list[dict]:
    turns = []
    for qa in qas:
        turns.append({"from": "human", "value": prompt(qa, context_style)})
        turns.append({"from": "gpt", "value": qa.answer})
    return turns


def vary_options(qas: list[QA], mc_options: tuple[int, int] | None, options_rng: random.Random | None) -> list[QA]:
    """`mc_options` = (min, max): each multiple-choice question keeps that many of its options, drawn with
    `options_rng` (None: all 4, unchanged)."""
    if not mc_options:
        return qas
    return [keep_options(qa, options_rng.randint(*mc_options), options_rng) if qa.options else qa for qa in qas]


def finetune_record(
    record_id: str, image: str, scene: Scene, rng: random.Random, types=None, turns: tuple[int, int] = (2, 5),
    mc_options: tuple[int, int] | None = None, options_rng: random.Random | None = None,
) -> dict | None:
    """Stage 2: `turns` = (min, max) question/answer rounds; `<image>` leads the first human turn only.
    `mc_options` = (min, max) options per multiple-choice question, drawn with `options_rng` (default: all 4)."""
    qas = vary_options(qa_pairs(scene, rng, types=types, k=rng.randint(*turns)), mc_options, options_rng)
    if not qas:
        return None
    conversation = _turns(qas, rng.choice(("sqa", "mmbench")))
    conversation[0]["value"] = f"{DEFAULT_IMAGE_TOKEN}\n{conversation[0]['value']}"
    return {"id": record_id, "image": image, "conversations": conversation}


def _check_types(types) -> None:
    if types is not None and set(types) - set(QUESTION_TYPES):
        raise ValueError(f"unknown question types {sorted(set(types) - set(QUESTION_TYPES))}")


def described_conversation(scene: Scene, qas: list[QA], context_style: str = "sqa") -> list[dict]:
    """The turns of `qas` with "The image shows <caption>" leading the first human turn, where `<image>` would be."""
    conversation = _turns(qas, context_style)
    conversation[0]["value"] = f"The image shows {caption(scene)}\n{conversation[0]['value']}"
    return conversation


def described_record(
    record_id: str, scene: Scene, rng: random.Random, types=None, turns: tuple[int, int] = (2, 5),
    mc_options: tuple[int, int] | None = None, options_rng: random.Random | None = None,
) -> dict | None:
    """Stage 0: like `finetune_record`, with the scene described in text instead of an image (no "image" key)."""
    qas = vary_options(qa_pairs(scene, rng, types=types, k=rng.randint(*turns)), mc_options, options_rng)
    if not qas:
        return None
    return {"id": record_id, "conversations": described_conversation(scene, qas, rng.choice(("sqa", "mmbench")))}


def _described_records(
    stream: str, n: int, types, turns: tuple[int, int], mc_options: tuple[int, int] | None = None
) -> list[dict]:
    records = []
    for i in range(n):
        rng = random.Random(f"{stream}/{i}")
        options_rng = random.Random(f"mc-options/{stream}/{i}") if mc_options else None
        record = described_record(f"{stream}/{i:06d}", sample_scene(rng, split="train"), rng, types, turns,
                                  mc_options, options_rng)
        if record is not None:
            records.append(record)
    return records


def write_described_set(
    out_dir: str | Path, n: int, seed: int = 0, types=None, turns: tuple[int, int] = (1, 1),
    mc_options: tuple[int, int] | None = None,
) -> Path:
    """Write stage 0's JSON (`n` conversations about described scenes, no images); return its path.

    Its scenes are drawn from their own stream, so they are not the images' scenes. `mc_options` as in
    `write_training_set`.
    """
    _check_types(types)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _described_records(f"described/{seed}", n, types, turns, mc_options)
    path = out_dir / STAGE_FILES[0]
    path.write_text(json.dumps(records, indent=1) + "\n")
    return path


def text_only_record(record_id: str, rng: random.Random) -> dict:
    """A conversation without image (no "image" key), as the real instruction mix has."""
    return {"id": record_id, "conversations": _turns([knowledge_question(rng)], "sqa")}


def write_training_set(
    out_dir: str | Path,
    n_images: int,
    seed: int = 0,
    stage: int = 2,
    types: tuple[str, ...] | list[str] | None = None,
    turns: tuple[int, int] = (2, 5),
    text_only_fraction: float = 0.02,
    write_images: bool = True,
    n_described: int = 0,
    described_types: tuple[str, ...] | list[str] | None = None,
    described_turns: tuple[int, int] = (1, 1),
    mc_options: tuple[int, int] | None = None,
) -> Path:
    """Write `n_images` PNGs under out_dir/images/seed<seed>/ and the stage's JSON; return the JSON's path.

    stage 1: captions (llava_tiny_pretrain.json); stage 2: multi-turn QA (llava_tiny_finetune.json) with
    question `types` (default: the keys of DEFAULT_TYPES) and `turns` = (min, max) questions per image, plus
    round(n_images * text_only_fraction) text-only conversations and `n_described` stage-0 conversations
    (`described_types`, `described_turns` questions each: they keep stage 0's skills while the model learns
    to read images). `mc_options` = (min, max): stage 2's multiple-choice questions get that many options
    (ScienceQA has 2-4) instead of 4, the described conversations' too, drawn from separate streams so
    that the rest of the data stays the same. Also writes scenes_seed<seed>.jsonl, the ground truth of
    every image (e.g. for pretraining the vision tower on colour/shape labels).
    Image paths in the JSON are relative to out_dir (pass out_dir as --image_folder).
    write_images=False skips rendering, for a second stage whose images the first one already wrote (the
    images of a seed are the same for both stages). Same arguments -> byte-identical files.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2 (stage 0 is write_described_set), got {stage}")
    _check_types(types)
    _check_types(described_types)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images" / f"seed{seed}"
    image_dir.mkdir(parents=True, exist_ok=True)
    records, scene_lines = [], []
    for i in range(n_images):
        scene = training_scene(seed, i)
        image = f"images/seed{seed}/{i:06d}.png"
        if write_images:
            (out_dir / image).write_bytes(encode(render(scene), "png"))
        scene_lines.append(json.dumps({"id": f"{seed}-{i:06d}", "image": image, "scene": scene.to_dict()}))
        rng = text_rng(seed, i, stage)
        record_id = f"{seed}-{i:06d}"
        record = (
            pretrain_record(record_id, image, scene, rng) if stage == 1
            else finetune_record(record_id, image, scene, rng, types=types, turns=turns, mc_options=mc_options,
                                 options_rng=random.Random(f"mc-options/{seed}/{i}") if mc_options else None)
        )
        if record is not None:
            records.append(record)
    if stage == 2:
        rng = random.Random(f"text-only/{seed}")
        records += [text_only_record(f"{seed}-text-{j:05d}", rng) for j in range(round(n_images * text_only_fraction))]
        records += _described_records(f"described-mix/{seed}", n_described, described_types, described_turns,
                                      mc_options)
    (out_dir / f"scenes_seed{seed}.jsonl").write_text("\n".join(scene_lines) + "\n")
    path = out_dir / STAGE_FILES[stage]
    path.write_text(json.dumps(records, indent=1) + "\n")
    return path
