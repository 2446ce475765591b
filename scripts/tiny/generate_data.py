"""Generate the synthetic data of the embedded default.

    python scripts/tiny/generate_data.py                       # training data + eval sets, default sizes
    python scripts/tiny/generate_data.py --skip-eval --n-images 8000 --seed 1
    python scripts/tiny/generate_data.py --skip-train          # only rewrite playground/data/eval
    python scripts/tiny/generate_data.py --skip-eval --stages 0 --n-described 150000   # text-only stage 0
    python scripts/tiny/generate_data.py --skip-eval --stages 2 --reuse-images --types mc word   # new QA mix

Training data (not committed; regenerate it) goes to --out: llava_tiny_described.json (stage 0, questions
about scenes described in text, no images), images/seed<seed>/*.png, llava_tiny_pretrain.json (stage 1,
captions), llava_tiny_finetune.json (stage 2, multi-turn QA) and scenes_seed<seed>.jsonl (ground truth).
The held-out benchmarks (committed) go to --eval-root in the official LLaVA layouts. Deterministic: the
same arguments write byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from llava.data import (  # noqa: E402
    DEFAULT_EVAL_SEED, QUESTION_TYPES, write_described_set, write_eval_sets, write_training_set,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "playground" / "data" / "tiny_train"))
    parser.add_argument("--n-images", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2], choices=[0, 1, 2])
    parser.add_argument("--types", nargs="+", default=None, choices=sorted(QUESTION_TYPES),
                        help="stage-2 question types (default: the default mix, every type but the focused ones "
                             "such as verify_word and mc_position); repeat a type to weight it")
    parser.add_argument("--turns", type=int, nargs=2, default=(2, 5), metavar=("MIN", "MAX"),
                        help="stage-2 question/answer rounds per image (more rounds amortise the 576 image tokens)")
    parser.add_argument("--mc-options", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="multiple-choice questions of stages 0 and 2 get MIN-MAX options (2-4; ScienceQA "
                             "has 2-4) instead of always 4")
    parser.add_argument("--text-only-fraction", type=float, default=0.02,
                        help="stage 2 also gets round(n_images * this) text-only multiple-choice questions (ScienceQA "
                             "mixes such questions into its test set)")
    parser.add_argument("--n-described", type=int, default=40000, help="stage-0 conversations")
    parser.add_argument("--described-turns", type=int, nargs=2, default=(1, 1), metavar=("MIN", "MAX"),
                        help="stage-0 question/answer rounds per described scene")
    parser.add_argument("--described-types", nargs="+", default=None, choices=sorted(QUESTION_TYPES),
                        help="stage-0 question types (default: the default mix)")
    parser.add_argument("--described-in-finetune", type=int, default=0, metavar="N",
                        help="add N stage-0 conversations to stage 2's JSON, to keep what stage 0 taught")
    parser.add_argument("--eval-root", default=str(REPO / "playground" / "data" / "eval"))
    parser.add_argument("--eval-seed", type=int, default=DEFAULT_EVAL_SEED)
    parser.add_argument("--eval-n", type=int, default=60, help="about this many questions per benchmark")
    parser.add_argument("--reuse-images", action="store_true",
                        help="the images of --seed are already under --out (same --n-images): write only the JSON, "
                             "e.g. stage 2 with other --types, without the 10 min of rendering")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args(argv)
    if args.text_only_fraction < 0:
        parser.error(f"--text-only-fraction {args.text_only_fraction}: must be >= 0")
    if args.mc_options and not 2 <= args.mc_options[0] <= args.mc_options[1] <= 4:
        parser.error(f"--mc-options {args.mc_options[0]} {args.mc_options[1]}: need 2 <= MIN <= MAX <= 4")
    mc_options = tuple(args.mc_options) if args.mc_options else None
    image_stages = [stage for stage in args.stages if stage != 0]
    if args.reuse_images and image_stages and not args.skip_train:
        image_dir = Path(args.out) / "images" / f"seed{args.seed}"
        missing = [i for i in range(args.n_images) if not (image_dir / f"{i:06d}.png").is_file()]
        if missing:
            parser.error(f"--reuse-images: {len(missing)} of the {args.n_images} images are missing under "
                         f"{image_dir} (first: {missing[0]:06d}.png); run once without --reuse-images")

    if not args.skip_train and 0 in args.stages:
        start = time.perf_counter()
        path = write_described_set(args.out, args.n_described, seed=args.seed, types=args.described_types,
                                   turns=tuple(args.described_turns),
                                   mc_options=mc_options)
        print(f"stage 0: {path} ({args.n_described} described scenes, {time.perf_counter() - start:.1f}s)")
    if not args.skip_train:
        for i, stage in enumerate(image_stages):
            start = time.perf_counter()
            path = write_training_set(
                args.out, args.n_images, seed=args.seed, stage=stage, types=args.types,
                write_images=i == 0 and not args.reuse_images,
                turns=tuple(args.turns), n_described=args.described_in_finetune,
                described_types=args.described_types, described_turns=tuple(args.described_turns),
                mc_options=mc_options,
                text_only_fraction=args.text_only_fraction,
            )
            print(f"stage {stage}: {path} ({args.n_images} images, {time.perf_counter() - start:.1f}s)")
    if not args.skip_eval:
        start = time.perf_counter()
        for s in write_eval_sets(args.eval_root, seed=args.eval_seed, n=args.eval_n):
            print(f"{s.name}: {s.n_questions} questions, {s.n_images} images")
        print(f"eval sets: {args.eval_root} ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
