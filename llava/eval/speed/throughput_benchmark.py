"""Evaluation throughput (questions per second) at several batch sizes, vanilla vs pruned, side by side in one run.

    python -m llava.eval.speed.throughput_benchmark                                  # both models, batch 1, 4 and 8
    python -m llava.eval.speed.throughput_benchmark --models embedded --batch-sizes 1 8 --questions 64

Two models:
- `embedded`: the embedded default checkpoint answering the POPE sample questions exactly as the eval
  workers do at `--batch-size N` (`llava.eval.core.common.answer_window`: prompts of similar length grouped,
  left-padded; greedy; the worker's 128 new tokens at most, stopping at EOS). Images and prompts are
  prepared once before timing: the workers prepare them in DataLoader processes beside the model.
- `benchmark`: the 32-layer random-init model of `llava.eval.speed.prefill_benchmark`, given LLaVA-1.5-shaped
  prompts as spliced embeddings (35 tokens, 576 image tokens, a question of 10 to 40 tokens, so batches are
  ragged) and generating `--new-tokens` greedy tokens each.
Every (batch size, variant) pair answers the same questions once per round, rounds interleaved so machine
noise hits them alike; the table shows medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
from tqdm import tqdm

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.core.common import PromptDataset, answer_window, windows
from llava.eval.workers.model_vqa import vqa_items
from llava.eval.speed.prefill_benchmark import build_model
from llava.eval.core.questions import read_jsonl
from llava.model import PruningRecord
from llava.model.families import load_model
from llava.model.pruning import make_dart_config

POPE_SAMPLE = ("playground/data/eval/pope/llava_pope_test.jsonl", "playground/data/eval/pope/val2014")
MODELS = ("embedded", "benchmark")


@dataclasses.dataclass
class Row:
    model: str
    batch_size: int
    variant: str
    questions: int
    median_seconds: float
    mean_kept_image_tokens: float
    questions_per_second: float = 0.0
    speedup_over_smallest_batch: float = 1.0


# Answers a question set once at a batch size: returns the kept image tokens per question.
Answerer = Callable[[int], list[int]]


def embedded_answerer(args) -> tuple[object, Answerer, int]:
    loaded = load_model(args.model_path, None, device=args.device)
    model = loaded.model
    rows = read_jsonl(args.question_file)
    folder = SimpleNamespace(image_folder=args.image_folder)
    items = [item for row in rows for item in vqa_items(row, folder)][: args.questions]
    dataset = PromptDataset(items, loaded, loaded.conv_mode(args.conv_mode, args.model_path))
    prepared = [dataset[i] for i in range(len(dataset))]
    unreadable = [p.error for p in prepared if p.error is not None]
    if unreadable:
        raise SystemExit(f"error: {len(unreadable)} question(s) cannot be prepared, e.g. {unreadable[0]}")
    gen_kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=128, use_cache=True)

    def answer(batch_size: int) -> list[int]:
        kept = []
        for window in windows(prepared, batch_size):
            kept += [a.kept_image_tokens for a in answer_window(loaded, window, batch_size, gen_kwargs).values()]
        return kept

    return model, answer, len(prepared)


def benchmark_prompts(args, hidden_size: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """(L_i, D) spliced prompts: 35 tokens, 576 image tokens, a question of 10..40 tokens."""
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(10, 41, (args.questions,), generator=g)
    return [(torch.randn(35 + 576 + int(n), hidden_size, generator=g) * 0.02).to(args.device, dtype) for n in lengths]


def generate_from_embeddings(model, prompts: Sequence[torch.Tensor], new_tokens: int) -> list[int]:
    """Left-pad `prompts` into one batch, generate `new_tokens` greedy tokens, return kept image tokens per row."""
    longest = max(p.shape[0] for p in prompts)
    embeds = prompts[0].new_zeros(len(prompts), longest, prompts[0].shape[1])
    mask = torch.zeros(len(prompts), longest, dtype=torch.long, device=prompts[0].device)
    spans = []
    for row, prompt in enumerate(prompts):
        pad = longest - prompt.shape[0]
        embeds[row, pad:] = prompt
        mask[row, pad:] = 1
        spans.append([(pad + 35, 576)])
    record = PruningRecord()
    with torch.inference_mode():
        model.generate(inputs_embeds=embeds, attention_mask=mask, image_spans=spans, pruning_record=record,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return [record.num_kept_image_tokens(row) for row in range(len(prompts))]


def benchmark_answerer(args) -> tuple[object, Answerer, int]:
    model_args = SimpleNamespace(hidden_size=1024, intermediate_size=2752, layers=32, heads=32,
                                 attn_implementation="sdpa", device=args.device)
    model = build_model(model_args)
    model.generation_config.eos_token_id = None  # random weights: every answer is exactly --new-tokens long
    prompts = benchmark_prompts(args, model.config.hidden_size, model.dtype)

    def answer(batch_size: int) -> list[int]:
        kept = []
        # Grouped by length within a window, as the workers do.
        for window in windows(range(len(prompts)), batch_size):
            ordered = sorted(window, key=lambda i: prompts[i].shape[0])
            for start in range(0, len(ordered), batch_size):
                batch = [prompts[i] for i in ordered[start : start + batch_size]]
                kept += generate_from_embeddings(model, batch, args.new_tokens)
        return kept

    return model, answer, len(prompts)


def measure(name: str, model, answer: Answerer, questions: int, args) -> list[Row]:
    variants = {"vanilla": None, f"dart-{args.max_kept}": make_dart_config(K=2, max_num_trunction=args.max_kept)}
    cases = [(b, v) for b in args.batch_sizes for v in variants]
    times = {case: [] for case in cases}
    kept = {}
    with tqdm(total=(args.warmup + args.rounds) * len(cases), desc=f"{name} model") as bar:
        for round_index in range(args.warmup + args.rounds):
            for batch_size, variant in cases:
                model.config.DART_config = variants[variant]
                start = time.perf_counter()
                kept[batch_size, variant] = answer(batch_size)
                if round_index >= args.warmup:
                    times[batch_size, variant].append(time.perf_counter() - start)
                bar.update()
    model.config.DART_config = None
    rows = []
    for batch_size, variant in cases:
        seconds = statistics.median(times[batch_size, variant])
        rows.append(Row(name, batch_size, variant, questions, seconds,
                        statistics.fmean(kept[batch_size, variant]), questions / seconds))
    for row in rows:
        base = next(r for r in rows if r.variant == row.variant and r.batch_size == min(args.batch_sizes))
        row.speedup_over_smallest_batch = row.questions_per_second / base.questions_per_second
    return rows


def format_table(rows: list[Row]) -> str:
    base = f"vs batch {min(r.batch_size for r in rows)}"
    lines = [f"{'model':<10} {'batch':>5} {'variant':<10} {'questions/s':>12} {'ms/question':>12} "
             f"{base:>10} {'kept image tokens':>18}"]
    for r in rows:
        lines.append(f"{r.model:<10} {r.batch_size:>5} {r.variant:<10} {r.questions_per_second:>12.2f} "
                     f"{1000 / r.questions_per_second:>12.1f} {r.speedup_over_smallest_batch:>9.2f}x "
                     f"{r.mean_kept_image_tokens:>18.1f}")
    return "\n".join(lines)


def summary(rows: list[Row], args) -> str:
    largest, dart = max(args.batch_sizes), f"dart-{args.max_kept}"
    parts = []
    for model in dict.fromkeys(r.model for r in rows):
        at = {(r.batch_size, r.variant): r for r in rows if r.model == model}
        parts.append(f"{model}: batch {largest} answers {at[largest, dart].speedup_over_smallest_batch:.2f}x as many "
                     f"questions/s as batch {min(args.batch_sizes)} with DART "
                     f"({at[largest, dart].questions_per_second:.2f}/s, "
                     f"{at[largest, dart].mean_kept_image_tokens:.0f} image tokens kept), "
                     f"{at[largest, 'vanilla'].speedup_over_smallest_batch:.2f}x without")
    return "summary: " + "; ".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--questions", type=int, default=32, help="questions per (batch size, variant) and round")
    parser.add_argument("--max-kept", type=int, default=128, help="DART's max_num_trunction")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens each answer of the benchmark model has")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="the `embedded` model (default: the embedded default)")
    parser.add_argument("--question-file", default=POPE_SAMPLE[0])
    parser.add_argument("--image-folder", default=POPE_SAMPLE[1])
    parser.add_argument("--conv-mode", default="vicuna_v1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.questions < 1 or args.rounds < 1:
        parser.error("--batch-sizes, --questions and --rounds must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available: benchmarking on the CPU", file=sys.stderr)
        args.device = "cpu"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"throughput benchmark: {', '.join(args.models)}; batch sizes {args.batch_sizes}; {args.questions} "
          f"questions; {args.device}, torch threads {torch.get_num_threads()}; {args.rounds} timed rounds after "
          f"{args.warmup} warm-up")
    builders = {"embedded": embedded_answerer, "benchmark": benchmark_answerer}
    rows = []
    for name in args.models:
        model, answer, questions = builders[name](args)
        rows += measure(name, model, answer, questions, args)
        del model
    print(format_table(rows))
    print(summary(rows, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
