"""Generate the fine-detail training data of the tiny models (documents, infographics, charts, diagrams, MMStar's
question forms), optionally mixed with a replay of their earlier question forms.

    python scripts/tiny/generate_detail_data.py --out playground/data/tiny_train/detail --seed 50 --n-images 6000
    python scripts/tiny/generate_detail_data.py --out DIR --seed 50 --n-images 6000 \
        --mix-with DIR/llava_tiny_finetune.json          # + a stage-2 file of generate_data.py in the same DIR
    python scripts/tiny/generate_detail_data.py --out DIR --n-images 0 --n-described 40000   # a text stage's data

Writes DIR/images/detail<seed>/*.png and DIR/llava_tiny_detail.json; with --n-described N, also
DIR/llava_tiny_detail_described.json (N text-only conversations about pages described in words instead of drawn);
with --mix-with or both of the first two, also DIR/llava_tiny_detail_mix.json (all of them, shuffled with the
seed). Images come from the "train" split of each generator (`llava.data.detail`), so none is a benchmark sample
image. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from llava.data.detail import DESCRIBED_KINDS, KINDS, write_described_detail_set, write_detail_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=50)
    parser.add_argument("--n-images", type=int, default=6000)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=sorted(KINDS),
                        help="image kinds, in turn (repeat one to weight it)")
    parser.add_argument("--turns", type=int, nargs=2, default=(4, 8), metavar=("MIN", "MAX"))
    parser.add_argument("--n-described", type=int, default=0,
                        help="text-only conversations about pages described in words")
    parser.add_argument("--described-kinds", nargs="+", default=list(DESCRIBED_KINDS), choices=sorted(DESCRIBED_KINDS),
                        help="their page kinds, in turn (repeat one to weight it)")
    parser.add_argument("--mix-with", default=None, help="a LLaVA conversation JSON whose images are under --out")
    args = parser.parse_args(argv)
    if args.n_images < 0 or args.n_described < 0:
        parser.error("--n-images and --n-described must be >= 0")
    start = time.perf_counter()
    with tqdm(total=args.n_images, desc="detail images") as bar:
        path = write_detail_set(args.out, args.seed, args.n_images, args.kinds, tuple(args.turns),
                                progress=lambda _: bar.update())
    records = json.loads(path.read_text())
    summary = f"{path}: {len(records)} images"
    described = []
    if args.n_described:
        with tqdm(total=args.n_described, desc="described pages") as bar:
            described_path = write_described_detail_set(args.out, args.seed, args.n_described, args.described_kinds,
                                                        tuple(args.turns), progress=lambda _: bar.update())
        described = json.loads(described_path.read_text())
        summary += f"; {described_path}: {len(described)} described pages"
    if args.mix_with or (records and described):
        mixed = records + described + (json.loads(Path(args.mix_with).read_text()) if args.mix_with else [])
        random.Random(args.seed).shuffle(mixed)
        mix_path = Path(args.out) / "llava_tiny_detail_mix.json"
        mix_path.write_text(json.dumps(mixed))
        summary += f"; {mix_path}: {len(mixed)} conversations" + (f" with {args.mix_with}" if args.mix_with else "")
    sys.stdout.write(f"{summary} ({time.perf_counter() - start:.1f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
