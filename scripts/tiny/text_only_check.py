"""Can the language model learn a question type at all? The same questions with the scene as text, no image.

    python scripts/tiny/text_only_check.py data --out DIR [--n-train 4000] [--types exist verify mc]
    python -m llava.train.train --model_name_or_path <stage1> --version v1 --data_path DIR/train.json ...
    python scripts/tiny/text_only_check.py score --model-path <run> --data DIR/eval.json

Each conversation starts with the scene's caption ("The image shows a small red circle at the top, on a
white background.") and asks 8-14 questions of the chosen types; the held-out file asks one question per
scene, from the evaluation split. If a language model cannot learn a type here, where nothing has to be
read from image tokens, no vision-side change will teach it that type (docs/tiny_model_history.md).
Text-only steps cost about half of an image step, so language-model settings can be tried quickly. The
text-only stage 0 (`generate_data.py --stages 0`) trains on conversations of this kind; eval.json measures
what it taught.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from llava.data.questions import QUESTION_TYPES, qa_pairs
from llava.data.scenes import sample_scene
from llava.data.synthetic import described_conversation


def described_question(split: str, rng: random.Random, types: list[str], turns: tuple[int, int]) -> tuple[list, str]:
    """(LLaVA conversation without image, type of its first question: "mc" for multiple choice)."""
    while True:
        scene = sample_scene(rng, split=split)
        qas = qa_pairs(scene, rng, types=types, k=rng.randint(*turns))
        if qas:
            return described_conversation(scene, qas), "mc" if qas[0].options else qas[0].kind


def write_data(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, n, turns in (("train", args.n_train, (8, 14)), ("eval", args.n_eval, (1, 1))):
        rng = random.Random(f"text-only/{args.seed}/{split}")
        records = []
        for i in range(n):
            conversation, kind = described_question(split, rng, args.types, turns)
            records.append({"id": f"{split}-{i:05d}", "conversations": conversation, "type": kind})
        (out / f"{split}.json").write_text(json.dumps(records, indent=1) + "\n")
    print(f"text-only check data: {out}/train.json ({args.n_train}), {out}/eval.json ({args.n_eval})")


def score(args: argparse.Namespace) -> None:
    from llava.eval.core.common import generate_answer
    from llava.eval.core.prompting import build_prompt
    from llava.model.builder import load_pretrained_model

    tokenizer, model, _, _ = load_pretrained_model(args.model_path, None, device="cpu")
    right, asked = Counter(), Counter()
    for record in json.loads(Path(args.data).read_text()):
        question, answer = (turn["value"] for turn in record["conversations"][:2])
        ids = tokenizer(build_prompt(question, args.conv_mode, num_images=0), return_tensors="pt").input_ids[0]
        out = generate_answer(model, tokenizer, ids, None, None, {"do_sample": False, "max_new_tokens": 6})
        asked[record["type"]] += 1
        right[record["type"]] += out.text.strip().rstrip(".").lower() == answer.lower()
    print(" | ".join(f"{t} {right[t] / asked[t]:.2f} ({asked[t]})" for t in sorted(asked)),
          f"| all {sum(right.values()) / sum(asked.values()):.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="write DIR/train.json and DIR/eval.json")
    data.add_argument("--out", required=True)
    data.add_argument("--n-train", type=int, default=4000)
    data.add_argument("--n-eval", type=int, default=150)
    data.add_argument("--types", nargs="+", default=["exist", "verify", "mc"], choices=sorted(QUESTION_TYPES))
    data.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("score", help="accuracy per question type of a checkpoint on DIR/eval.json")
    check.add_argument("--model-path", required=True)
    check.add_argument("--data", required=True)
    check.add_argument("--conv-mode", default="vicuna_v1")
    args = parser.parse_args(argv)
    if args.command == "data":
        write_data(args)
    else:
        score(args)


if __name__ == "__main__":
    main()
