"""Accuracy against kept image tokens: benchmarks x pruning methods x budgets, through the eval scripts.

    python -m llava.eval.sweep --out runs/sweep                     # the embedded default, on the CPU
    python -m llava.eval.sweep --out runs/sweep-7b --ckpt liuhaotian/llava-v1.5-7b \\
        --benchmarks textvqa pope mme gqa --methods dart fastv pdrop visionzip divprune pooling --tokens 192 128 64

Each point runs the benchmark's own script (`scripts/v1_5/eval/<bench>.sh`: the workers, on every GPU in
CUDA_VISIBLE_DEVICES, and the official scorer), reads the scorer's result file, and takes the image tokens
actually kept from the workers' summary. A budget is the number of image tokens to keep, given the same way
to every method: DART, FastV, random, VisionZip and DivPrune keep 4 image pivots + 8 x floor(M / 8) (the
largest such count up to the budget), PyramidDrop's stages end at that same count, and pooling keeps the
largest h x w grid within it (h = floor(sqrt(count))). The sweep writes OUT/results.json after every
point (a rerun skips the points it holds; the scripts resume their answer files too), and at the end
OUT/results.md and OUT/accuracy_vs_tokens.png (one panel per benchmark, one line per method).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
IMAGE_PIVOTS, PIVOTS = 4, 8  # the DART release's 4 image + 4 text pivots
KEPT_LINE = re.compile(r"image tokens kept per question ([\d.]+) of ([\d.]+)")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"the scorer wrote no {path}")
    return json.loads(path.read_text())


# Per benchmark: (metric label, score in % from the scorer's own result file of run NAME under DATA).
def _pope(data: Path, name: str) -> float:
    categories = _read(data / "pope" / "answers" / f"{name}.score.json")["categories"].values()
    return 100 * statistics.mean(c["accuracy"] for c in categories if c["samples"])


def _mme(data: Path, name: str) -> float:
    subtasks = _read(data / "MME" / "eval_tool" / "answers" / name / "mme_score.json")["perception"]["subtasks"]
    return 100 * statistics.mean(s["acc"] for s in subtasks.values())


def _gqa(data: Path, name: str) -> float:
    return _read(data / "gqa" / "data" / "predictions" / name / "testdev_balanced_predictions.score.json")["accuracy"]


def _answers_score(folder: str) -> Callable[[Path, str], float]:
    return lambda data, name: _read(data / folder / "answers" / f"{name}.score.json")["accuracy"]


def _seed(data: Path, name: str) -> float:
    return _read(data / "seed_bench" / "answers" / name / "merge.score.json")["accuracy"]


def _mmbench(folder: str, split: str) -> Callable[[Path, str], float]:
    return lambda data, name: _read(data / folder / "answers" / split / f"{name}.score.json")["circular"]["accuracy"]


def _qbench(run: str) -> Callable[[Path, str], float]:
    return lambda data, name: _read(data / "qbench" / "answers" / run / f"{name}.score.json")["accuracy"]


BENCHMARKS: dict[str, tuple[str, Callable[[Path, str], float]]] = {
    "pope": ("accuracy, mean of the 3 splits", _pope),
    "mme": ("perception accuracy, mean of the subtasks", _mme),
    "gqa": ("accuracy", _gqa),
    "textvqa": ("VQA accuracy", _answers_score("textvqa")),
    "sqa": ("accuracy", _answers_score("scienceqa")),
    "mmbench": ("circular accuracy", _mmbench("mmbench", "mmbench_dev_20230712")),
    "mmbench_cn": ("circular accuracy", _mmbench("mmbench_cn", "mmbench_dev_cn_20231003")),
    "seed": ("accuracy", _seed),
    "qbench": ("accuracy", _qbench("llvisionqa_dev")),
    "qbench_zh": ("accuracy", _qbench("llvisionqa_zh_dev")),
    "ocrbench": ("accuracy: score / questions", _answers_score("OCRBench")),
}
METHOD_STYLES = {"dart": "o-", "fastv": "^-", "pdrop": "v-", "random": "s--", "visionzip": "D-", "divprune": "P-",
                 "pooling": "x--"}


def dart_family_budget(tokens: int) -> int:
    """max_num_trunction M whose DART kept count 4 + 8 * floor(M / 8) is the largest not above `tokens`."""
    if tokens < IMAGE_PIVOTS + PIVOTS:
        raise ValueError(f"a budget of {tokens} image tokens is below DART's smallest, {IMAGE_PIVOTS + PIVOTS}")
    return PIVOTS * ((tokens - IMAGE_PIVOTS) // PIVOTS)


def kept_for(tokens: int) -> int:
    return IMAGE_PIVOTS + dart_family_budget(tokens)


def point_settings(method: str | None, tokens: int | None, image_tokens: int) -> tuple[dict[str, str], list[str]]:
    """(script environment, extra worker flags) of one point; method None is the unpruned run."""
    if method is None:
        return {"DART": "0"}, []
    env = {"PRUNING_METHOD": method}
    if method != "pdrop":
        return env, []
    # PyramidDrop's three stages halve the image twice and end at the DART family's count: int(m * r) = kept.
    kept = kept_for(tokens)
    final = (kept + 0.5) / image_tokens
    ratios = [min(1.0, 4 * final), min(1.0, 2 * final), final]
    return env, ["--pdrop_ratios", ",".join(f"{r:.6f}" for r in ratios)]


def run_point(bench: str, method: str | None, tokens: int | None, args) -> dict:
    """One scripted evaluation: {score, kept, image_tokens, seconds}."""
    key = point_key(method, tokens)
    name = f"{args.name_prefix}-{key}"
    env_extra, flags = point_settings(method, tokens, args.image_tokens)
    eval_args = ["--max_new_tokens", str(args.max_new_tokens), *flags, *args.eval_args.split()]
    env = {**os.environ, "NAME": name, "EVAL_ARGS": " ".join(eval_args), **env_extra}
    if args.ckpt:
        env["CKPT"] = args.ckpt
    max_kept = str(dart_family_budget(tokens)) if tokens is not None else "128"
    start = time.time()
    # The v1_6 scripts take the LLaVA-1.6 budget, retain_token_num_for_llava_next, in the same place; with
    # the pivots it keeps the same count: 4 + min(retain, m - 4) rounded down to the 8 pivots.
    script = f"scripts/v{args.llava_version.replace('.', '_')}/eval/{bench}.sh"
    proc = subprocess.run(["bash", script, "0.778", max_kept], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{bench} {key} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    counts = [(float(kept), float(total)) for kept, total in KEPT_LINE.findall(proc.stdout + proc.stderr)]
    if not counts:
        raise RuntimeError(f"{bench} {key}: the workers printed no 'image tokens kept' summary")
    return {
        "score": BENCHMARKS[bench][1](Path(args.data_root), name),
        "kept": statistics.mean(k for k, _ in counts),
        "image_tokens": statistics.mean(t for _, t in counts),
        "seconds": round(time.time() - start, 1),
        "name": name,
    }


def point_key(method: str | None, tokens: int | None) -> str:
    return "vanilla" if method is None else f"{method}-{tokens}"


def markdown(results: dict, methods: list[str], budgets: list[int]) -> str:
    """One row per benchmark and method; columns: unpruned, then each budget (the kept count measured)."""
    head = "| benchmark (metric) | method | unpruned | " + " | ".join(f"{b} budget" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 3)]
    for bench, points in results.items():
        vanilla = points.get("vanilla")
        for method in methods:
            cells = []
            for tokens in budgets:
                point = points.get(point_key(method, tokens))
                cells.append(f"{point['score']:.1f} ({point['kept']:.0f})" if point else "")
            base = f"{vanilla['score']:.1f} ({vanilla['kept']:.0f})" if vanilla else ""
            lines.append(f"| {bench} ({BENCHMARKS[bench][0]}) | {method} | {base} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Scores in %, from each benchmark's scorer; in brackets the image tokens kept per question.")
    return "\n".join(lines)


def spaced_ticks(counts: set[int]) -> list[int]:
    """The kept counts to label on a log axis: from the largest down, one within 15% of a labelled one is
    skipped (pooling's 56 beside the others' 60), so the labels never overlap."""
    ticks: list[int] = []
    for count in sorted(counts, reverse=True):
        if not ticks or count < 0.85 * ticks[-1]:
            ticks.append(count)
    return sorted(ticks)


def plot(results: dict, methods: list[str], budgets: list[int], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("the plot needs matplotlib (the scores are saved; rerun to plot): "
                           "pip install -e '.[plot]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.2), squeeze=False)
    for ax, (bench, points) in zip(axes[0], results.items()):
        for method in methods:
            measured = [points[point_key(method, t)] for t in sorted(budgets) if point_key(method, t) in points]
            if "vanilla" in points:
                measured.append(points["vanilla"])
            ax.plot([p["kept"] for p in measured], [p["score"] for p in measured],
                    METHOD_STYLES.get(method, "x-"), label=method)
        ax.set_xscale("log", base=2)
        ticks = spaced_ticks({round(p["kept"]) for p in points.values()})
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_title(bench, fontsize=10)
        ax.set_xlabel("image tokens kept", fontsize=8)
    axes[0][0].set_ylabel("score (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Accuracy against image tokens kept", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for results.json, results.md and the plot")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: the scripts' embedded default)")
    parser.add_argument("--llava-version", choices=["1.5", "1.6"], default="1.5",
                        help="1.6: the scripts/v1_6 scripts (the 1.6 budget, the tiny 1.6 default)")
    parser.add_argument("--benchmarks", nargs="+", default=["pope", "gqa", "sqa"], choices=list(BENCHMARKS))
    parser.add_argument("--methods", nargs="+", default=list(METHOD_STYLES), choices=list(METHOD_STYLES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[64, 32, 16], help="image tokens to keep")
    parser.add_argument("--image-tokens", type=int, default=576, help="image tokens per image unpruned (PDrop's ratios)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answers are short; bounds a rambling one")
    parser.add_argument("--eval-args", default="", help="more worker flags, e.g. '--batch-size 8'")
    parser.add_argument("--data-root", default=str(REPO / "playground" / "data" / "eval"))
    parser.add_argument("--name-prefix", default="sweep", help="prefix of the runs' answer-file names")
    parser.add_argument("--overwrite", action="store_true", help="rerun the points OUT/results.json holds")
    args = parser.parse_args(argv)
    try:
        for tokens in args.tokens:
            dart_family_budget(tokens)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    saved = json.loads(results_path.read_text()) if results_path.is_file() and not args.overwrite else {}
    results: dict[str, dict] = {bench: dict(saved.get("results", {}).get(bench, {})) for bench in args.benchmarks}
    points = [(bench, method, tokens) for bench in args.benchmarks
              for method, tokens in [(None, None)] + [(m, t) for t in args.tokens for m in args.methods]]
    started = time.time()
    progress = tqdm(points, desc="sweep", unit="point", file=sys.stderr)
    for bench, method, tokens in progress:
        key = point_key(method, tokens)
        progress.set_postfix_str(f"{bench} {key}")
        if key in results[bench]:
            continue
        try:
            results[bench][key] = run_point(bench, method, tokens, args)
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        results_path.write_text(json.dumps({"ckpt": args.ckpt, "results": results}, indent=2) + "\n")
    table = markdown(results, args.methods, args.tokens)
    (out / "results.md").write_text(table + "\n")
    print(table)
    try:
        plot(results, args.methods, args.tokens, out / "accuracy_vs_tokens.png")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sweep: {len(points)} points ({len(args.benchmarks)} benchmarks x {len(args.methods)} methods x "
          f"{len(args.tokens)} budgets + unpruned) in {time.time() - started:.0f} s; {out}/results.md, "
          f"{out}/accuracy_vs_tokens.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
