"""What the CPU suite cannot check, in one run on one GPU (`bash scripts/gpu_check.sh`, under 10 minutes).

    python -m llava.eval.speed.gpu_check                       # needs CUDA; fails at once, saying so, without it
    python -m llava.eval.speed.gpu_check --skip-benchmark      # only the tiny defaults' checks
    python -m llava.eval.speed.gpu_check --device cpu --smoke  # the same code path on the CPU, tiny sizes (the tests)

Checks, on the embedded defaults (LLaVA-1.5 and LLaVA-1.6 tiny) and the POPE sample questions:
  precision   DART under sdpa and flash_attention_2, in bf16 and fp16, keeps the tokens the fp32 eager run keeps.
              Low precision reorders near-tied scores, so a few swapped tokens are expected: each row counts the
              questions whose kept set differs and the swapped tokens; it fails when more than --max-swapped of
              the kept tokens differ (default 5%).
  methods     every registered pruning method runs on the GPU and keeps image tokens.
  batching    a batch of 8 keeps the same tokens and gives the same greedy answers as the 8 questions one by one.
  prefill     the prefill benchmark at LLaVA-1.5-7B's width (4096) with 576 image tokens, and at LLaVA-1.6's shape
              (2880 image tokens, 320 kept): measured speed-up / FLOP-ideal speed-up of DART's time to first token.
Prints one table, one row per check, and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.speed import prefill_benchmark
from llava.eval.core.common import Generation, generate_answers
from llava.mm_utils import get_model_name_from_path
from llava.model.families import load_model
from llava.model.pruning import make_dart_config, method_names, parse_pruning_settings

logger = logging.getLogger("llava.eval.speed.gpu_check")

REPO = Path(__file__).resolve().parents[3]
# checkpoint -> its scripts' DART settings (LLaVA-1.6: the release's anyres budget, as scripts/v1_6/eval use it)
CHECKPOINTS = {DEFAULT_MODEL_PATH: {}, str(REPO / "checkpoints" / "llava-v1.6-tiny"): {"retain_token_num_for_llava_next": 320}}
POPE_QUESTIONS = REPO / "playground" / "data" / "eval" / "pope" / "llava_pope_test.jsonl"
POPE_IMAGES = POPE_QUESTIONS.parent / "val2014"
LOW_PRECISIONS = (("sdpa", torch.bfloat16), ("sdpa", torch.float16),
                  ("flash_attention_2", torch.bfloat16), ("flash_attention_2", torch.float16))
REAL_WIDTH = ["--hidden-size", "4096", "--intermediate-size", "11008"]
BENCHMARK_SHAPES = {  # name -> prefill_benchmark flags
    "LLaVA-1.5-7B": REAL_WIDTH + ["--kept", "128"],
    "LLaVA-1.6 shape": REAL_WIDTH + ["--image-tokens", "2880", "--kept", "320"],
}
SMOKE_BENCHMARK = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128",
                   "--image-tokens", "64", "--kept", "16", "--repeats", "1", "--warmup", "0", "--new-tokens", "1"]


class NoGPUError(RuntimeError):
    """The check was asked for CUDA on a machine where torch sees no GPU."""


@dataclasses.dataclass
class Row:
    check: str
    setting: str
    result: str
    passed: bool | None  # None: not run (e.g. flash-attn not installed)

    @property
    def verdict(self) -> str:
        return {True: "ok", False: "FAIL", None: "skipped"}[self.passed]


@dataclasses.dataclass
class KeptComparison:
    """How far one run's kept image tokens are from the reference run's, question by question."""

    questions: int = 0
    differing_questions: int = 0
    swapped_tokens: int = 0
    kept_tokens: int = 0

    def add(self, reference: Sequence, other: Sequence) -> None:
        reference, other = set(reference), set(other)
        swapped = max(len(reference - other), len(other - reference))
        self.questions += 1
        self.differing_questions += swapped > 0
        self.swapped_tokens += swapped
        self.kept_tokens += len(reference)

    @property
    def swapped_fraction(self) -> float:
        return self.swapped_tokens / max(self.kept_tokens, 1)

    def describe(self) -> str:
        return (f"{self.questions - self.differing_questions}/{self.questions} questions identical; "
                f"{self.swapped_tokens} of {self.kept_tokens} kept tokens swapped ({100 * self.swapped_fraction:.1f}%)")


def require_device(device: str) -> None:
    """Fail at once, before any model loads, when CUDA was asked for and torch sees no GPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise NoGPUError(
            f"the GPU check needs a CUDA GPU, and torch {torch.__version__} ({build}) sees none. Run it on a machine "
            "with a GPU and a CUDA build of torch (README, Quick start: TORCH_BUILD=cu128 bash scripts/setup_env.sh); "
            "`--device cpu --smoke` runs the same code on the CPU")


def pope_prompts(count: int) -> list[tuple[str, Image.Image]]:
    """The first `count` POPE sample questions with their images."""
    prompts = []
    with open(POPE_QUESTIONS, encoding="utf-8") as f:
        for line in f:
            if len(prompts) == count:
                break
            row = json.loads(line)
            prompts.append((row["text"], Image.open(POPE_IMAGES / row["image"]).convert("RGB")))
    return prompts


class TinyRun:
    """One checkpoint loaded under one attention implementation and dtype, answering with given pruning settings."""

    def __init__(self, path: str, device: str, attn: str, dtype: torch.dtype):
        self.base_settings = CHECKPOINTS.get(path, {})
        self.loaded = load_model(path, None, device=device, attn_implementation=attn, torch_dtype=dtype,
                                 device_map=None)
        self.model = self.loaded.model
        self.conv_mode = self.loaded.conv_mode(None, get_model_name_from_path(path))

    def answer(self, prompts, settings: dict | None, batch_size: int, new_tokens: int) -> list[Generation]:
        layers = self.model.config.num_hidden_layers
        self.model.config.DART_config = (None if settings is None
                                         else parse_pruning_settings(make_dart_config(**self.base_settings, **settings), layers).to_dict())
        inputs = [self.loaded.question_inputs(text, [image], self.conv_mode) for text, image in prompts]
        answers = []
        for start in range(0, len(inputs), batch_size):
            answers += generate_answers(self.loaded, inputs[start:start + batch_size],
                                        {"do_sample": False, "max_new_tokens": new_tokens})
        return answers


def kept_patches(answer: Generation) -> list[tuple[int, int]]:
    """The kept image tokens of one answer as (image, patch offset) pairs: the same whatever the row's padding."""
    per_image = answer.record.kept_image_positions(answer.sample)
    return [(image, int(p)) for image, positions in enumerate(per_image) if positions is not None
            for p in positions.tolist()]


def check_precision(path: str, args, prompts, reference: list[Generation]) -> list[Row]:
    rows = []
    flash_installed = importlib.util.find_spec("flash_attn") is not None
    precisions = LOW_PRECISIONS if not args.smoke else (("sdpa", torch.bfloat16),)
    for attn, dtype in precisions:
        setting = f"{Path(path).name} {attn} {str(dtype).removeprefix('torch.')}"
        if attn == "flash_attention_2" and not flash_installed:
            rows.append(Row("precision", setting, "flash-attn is not installed (pip install flash-attn)", None))
            continue
        run = TinyRun(path, args.device, attn, dtype)
        answers = run.answer(prompts, {}, 1, args.new_tokens)
        comparison = KeptComparison()
        for ref, ans in zip(reference, answers):
            comparison.add(kept_patches(ref), kept_patches(ans))
        rows.append(Row("precision", setting, comparison.describe(), comparison.swapped_fraction <= args.max_swapped))
        del run
    return rows


def check_methods(path: str, args, prompts) -> list[Row]:
    run = TinyRun(path, args.device, "sdpa", torch.float16 if args.device.startswith("cuda") else torch.float32)
    rows = []
    for method in method_names():
        setting = f"{Path(path).name} {method}"
        try:
            answers = run.answer(prompts[:2], {"method": method}, 2, args.new_tokens)
        except ValueError as exc:  # a method's documented refusal of this input (e.g. pooling on anyres crops)
            rows.append(Row("methods", setting, f"refused: {exc}", None))
            continue
        kept = [a.kept_image_tokens for a in answers]
        total = [a.image_tokens for a in answers]
        rows.append(Row("methods", setting, f"kept {kept} of {total} image tokens",
                        all(0 < k <= t for k, t in zip(kept, total))))
    return rows


def check_batching(path: str, args, prompts, alone: list[Generation]) -> Row:
    run = TinyRun(path, args.device, "sdpa", torch.float32)
    batched = run.answer(prompts, {}, len(prompts), args.new_tokens)
    comparison = KeptComparison()
    for one, many in zip(alone, batched):
        comparison.add(kept_patches(one), kept_patches(many))
    same_answers = sum(one.text == many.text for one, many in zip(alone, batched))
    passed = comparison.swapped_tokens == 0 and same_answers == len(prompts)
    return Row("batching", f"{Path(path).name} batch {len(prompts)} vs 1, fp32 sdpa",
               f"{comparison.describe()}; {same_answers}/{len(prompts)} answers equal", passed)


def check_prefill(args) -> list[Row]:
    shapes = {"smoke": SMOKE_BENCHMARK} if args.smoke else BENCHMARK_SHAPES
    rows = []
    for name, flags in shapes.items():
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "prefill.json")
            prefill_benchmark.main(flags + ["--device", args.device, "--methods", "dart", "--json", out])
            with open(out, encoding="utf-8") as f:
                results = json.load(f)["results"]
        dart = next(r for r in results if r["name"].startswith("dart-"))
        ratio = dart["measured_speedup"] / dart["ideal_speedup"]
        rows.append(Row("prefill", name, f"DART time to first token {dart['measured_speedup']:.2f}x, FLOP-ideal "
                        f"{dart['ideal_speedup']:.2f}x (measured / ideal {ratio:.2f})", dart["measured_speedup"] > 1
                        or args.smoke))
    return rows


def run_checks(args) -> list[Row]:
    prompts = pope_prompts(args.questions)
    rows = []
    for path in CHECKPOINTS:
        reference_run = TinyRun(path, args.device, "eager", torch.float32)
        reference = reference_run.answer(prompts, {}, 1, args.new_tokens)
        del reference_run
        logger.info("%s: fp32 eager reference done", Path(path).name)
        rows += check_precision(path, args, prompts, reference)
        rows += check_methods(path, args, prompts)
        alone = TinyRun(path, args.device, "sdpa", torch.float32).answer(prompts, {}, 1, args.new_tokens)
        rows.append(check_batching(path, args, prompts, alone))
    if not args.skip_benchmark:
        rows += check_prefill(args)
    return rows


def format_rows(rows: Sequence[Row]) -> str:
    widths = [max(len(getattr(r, field)) for r in rows) for field in ("check", "setting")]
    lines = [f"{'check':<{widths[0]}}  {'setting':<{widths[1]}}  {'':7}  result"]
    for r in rows:
        lines.append(f"{r.check:<{widths[0]}}  {r.setting:<{widths[1]}}  {r.verdict:<7}  {r.result}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--questions", type=int, default=8, help="POPE sample questions per check (batching: one batch)")
    parser.add_argument("--new-tokens", type=int, default=8, help="greedy tokens generated per answer")
    parser.add_argument("--max-swapped", type=float, default=0.05,
                        help="largest fraction of kept tokens a low-precision run may swap (near-ties)")
    parser.add_argument("--skip-benchmark", action="store_true", help="leave out the prefill benchmark")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one precision: the code path, not the numbers (what the tests run)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.questions, args.new_tokens = min(args.questions, 2), min(args.new_tokens, 2)
    return args


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        require_device(args.device)
    except NoGPUError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = run_checks(args)
    print(format_rows(rows))
    failed = [r for r in rows if r.passed is False]
    skipped = sum(r.passed is None for r in rows)
    print(f"gpu check: {len(rows) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped "
          f"on {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
