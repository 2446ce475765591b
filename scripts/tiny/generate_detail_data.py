"""Generate the fine-detail training data of the tiny models (documents, infographics, charts, diagrams, MMStar's
question forms), optionally mixed with a replay of their earlier question forms.

    python scripts/tiny/generate_detail_data.py --out playground/data/tiny_train/detail --seed 50 --n-images 6000
    python scripts/tiny/generate_detail_data.py --out DIR --seed 50 --n-images 6000 \
        --mix-with DIR/llava_tiny_finetune.json          # + a stage-2 file of generate_data.py in the same DIR

Writes DIR/images/detail<seed>/*.png and DIR/llava_tiny_detail.json; with --mix-with, also
DIR/llava_tiny_detail_mix.json (both files' conversations, shuffled with the seed). Images come from the "train"
split of each generator (`llava.data.detail`), so none is a benchmark sample image. Deterministic.
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

from llava.data.detail import KINDS, write_detail_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=50)
    parser.add_argument("--n-images", type=int, default=6000)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=sorted(KINDS),
                        help="image kinds, in turn (repeat one to weight it)")
    parser.add_argument("--turns", type=int, nargs=2, default=(4, 8), metavar=("MIN", "MAX"))
    parser.add_argument("--mix-with", default=None, help="a LLaVA conversation JSON whose images are under --out")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tqdm(total=args.n_images, desc="detail images") as bar:
        path = write_detail_set(args.out, args.seed, args.n_images, args.kinds, tuple(args.turns),
                                progress=lambda _: bar.update())
    records = json.loads(path.read_text())
    summary = f"{path}: {len(records)} images"
    if args.mix_with:
        mixed = records + json.loads(Path(args.mix_with).read_text())
        random.Random(args.seed).shuffle(mixed)
        mix_path = Path(args.out) / "llava_tiny_detail_mix.json"
        mix_path.write_text(json.dumps(mixed))
        summary += f"; {mix_path}: {len(mixed)} conversations with {args.mix_with}"
    sys.stdout.write(f"{summary} ({time.perf_counter() - start:.1f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
