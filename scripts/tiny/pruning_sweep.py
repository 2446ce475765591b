"""Accuracy of the tiny model on every generated benchmark, unpruned and pruned (DART vs random).

    python scripts/tiny/pruning_sweep.py [--ckpt checkpoints/llava-v1.5-tiny] [--budgets 192 128 64 32]

Runs the real per-benchmark scripts (scripts/v1_5/eval/*.sh: workers + official scorers) once per setting,
reads the scorers' result JSON, and writes docs/tiny_model_results.{json,md} and the plot
docs/tiny_pruning.png (accuracy against image tokens kept, DART vs random).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "playground" / "data" / "eval"
PIVOTS = 8  # 4 image + 4 text pivots; every pivot selects floor(M / 8) tokens


def kept_tokens(budget: int | None) -> int:
    """Image tokens kept for max_num_trunction = budget (None: unpruned): 4 image pivots + 8 * floor(M / 8)."""
    return 576 if budget is None else 4 + PIVOTS * (budget // PIVOTS)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


# Per benchmark: the headline metric (0..100) read from its official scorer's result file, and the chance
# level of the generated set (playground/data/eval/SYNTHETIC_README.md).
def pope(name):
    categories = _json(DATA / "pope" / "answers" / f"{name}.score.json")["categories"].values()
    return 100 * statistics.mean(c["accuracy"] for c in categories if c["samples"])


def mme(name):
    perception = _json(DATA / "MME" / "eval_tool" / "answers" / name / "mme_score.json")["perception"]["subtasks"]
    return 100 * statistics.mean(s["acc"] for s in perception.values())


def gqa(name):
    return _json(DATA / "gqa" / "data" / "testdev_balanced_predictions.score.json")["accuracy"]


def textvqa(name):
    return _json(DATA / "textvqa" / "answers" / f"{name}.score.json")["accuracy"]


def sqa(name):
    return _json(DATA / "scienceqa" / "answers" / f"{name}.score.json")["accuracy"]


def _mmbench_circular(name):
    return _json(DATA / "mmbench" / "answers" / "mmbench_dev_20230712" / f"{name}.score.json")["circular"]


def mmbench(name):
    return _mmbench_circular(name)["accuracy"]


def mmbench_rows(name):
    return _mmbench_circular(name)["row_accuracy"]


# Per benchmark script, its metrics: (read the metric, label, chance level in %). MMBench has two: the
# circular rule scores 0 for a model that is right on 3 rotations of every question, the rows do not.
BENCHMARKS = {
    "pope": {"pope": (pope, "accuracy (mean of 3 splits)", 50.0)},
    "mme": {"mme": (mme, "accuracy (mean of 5 subtasks)", 50.0)},
    "gqa": {"gqa": (gqa, "accuracy", 35.0)},
    "textvqa": {"textvqa": (textvqa, "VQA accuracy", 8.3)},
    "sqa": {"sqa": (sqa, "accuracy", 36.8)},
    "mmbench": {"mmbench": (mmbench, "circular accuracy", 0.4),
                "mmbench-rows": (mmbench_rows, "accuracy per row", 25.0)},
}
METRICS = {metric: spec for metrics in BENCHMARKS.values() for metric, spec in metrics.items()}


def run(bench: str, ckpt: str, method: str | None, budget: int | None) -> tuple[dict[str, float], float]:
    """One scripted evaluation; returns ({metric: score}, seconds)."""
    label = "vanilla" if method is None else f"{method}-{budget}"
    name = f"sweep-{label}"
    # Answers are a word or a letter: 32 new tokens bound the time a wrong, rambling answer can take.
    env = {**os.environ, "CKPT": ckpt, "NAME": name, "EVAL_ARGS": "--overwrite --max_new_tokens 32"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if method is None:
        env["DART"] = "0"
    else:
        env["PRUNING_METHOD"] = method
    start = time.time()
    proc = subprocess.run(["bash", f"scripts/v1_5/eval/{bench}.sh", "0.778", str(budget or 128)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{bench} {label} failed:\n{proc.stderr[-3000:]}")
    return {metric: read(name) for metric, (read, _, _) in BENCHMARKS[bench].items()}, time.time() - start


def plot(results: dict, budgets: list[int], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        sys.exit("the plot needs matplotlib (the scores are saved): bash scripts/setup_env.sh plot, then "
                 "python scripts/tiny/pruning_sweep.py --replot")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(results)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), sharex=True, squeeze=False)
    axes = axes[0]
    order = sorted(budgets)
    xs = [kept_tokens(b) for b in order] + [576]
    for ax, metric in zip(axes, metrics):
        r = results[metric]
        for method, style in (("dart", "o-"), ("random", "s--")):
            ys = [r[f"{method}-{b}"] for b in order] + [r["vanilla"]]
            ax.plot(xs, ys, style, label="DART" if method == "dart" else "random")
        ax.axhline(METRICS[metric][2], color="gray", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs], fontsize=7)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("image tokens kept", fontsize=8)
    axes[0].set_ylabel("score (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Tiny LLaVA on the generated benchmarks: DART vs random pruning", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(results: dict, budgets: list[int]) -> str:
    settings = ["vanilla"] + [f"{m}-{b}" for b in budgets for m in ("dart", "random")]
    head = "| benchmark (metric) | chance | " + " | ".join(
        "576 (unpruned)" if s == "vanilla" else f"{s.split('-')[0].upper() if s.startswith('dart') else 'random'} "
        f"{kept_tokens(int(s.split('-')[1]))}" for s in settings) + " |"
    lines = [head, "|" + "---|" * (len(settings) + 2)]
    for metric, r in results.items():
        _, label, chance = METRICS[metric]
        lines.append(f"| {metric} ({label}) | {chance:.1f} | " + " | ".join(f"{r[s]:.1f}" for s in settings) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="checkpoints/llava-v1.5-tiny")
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[192, 128, 64, 32], help="max_num_trunction values")
    parser.add_argument("--out", default="docs/tiny_model_results")
    parser.add_argument("--plot", default="docs/tiny_pruning.png")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from OUT.json")
    args = parser.parse_args(argv)
    out, plot_path = REPO / args.out, REPO / args.plot
    if args.replot:
        saved = json.loads(out.with_suffix(".json").read_text())
        plot(saved["results"], saved["budgets"], plot_path)
        return
    # Created before the runs, so that the results of a long sweep always have somewhere to go.
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    for bench in args.benchmarks:
        for method, budget in [(None, None)] + [(m, b) for b in args.budgets for m in ("dart", "random")]:
            key = "vanilla" if method is None else f"{method}-{budget}"
            scores, seconds = run(bench, args.ckpt, method, budget)
            for metric, score in scores.items():
                results.setdefault(metric, {})[key] = score
                print(f"{metric:12s} {key:12s} {score:6.1f}  ({seconds:.0f}s)", flush=True)
    out.with_suffix(".json").write_text(json.dumps({"ckpt": args.ckpt, "budgets": args.budgets, "results": results}, indent=2) + "\n")
    table = markdown(results, args.budgets)
    out.with_suffix(".md").write_text(table + "\n")
    plot(results, args.budgets, plot_path)
    print(table)
    dart128 = statistics.mean(r["dart-128"] for r in results.values()) if 128 in args.budgets else float("nan")
    print(f"summary: mean score unpruned {statistics.mean(r['vanilla'] for r in results.values()):.1f}, "
          f"DART-132 {dart128:.1f} over {len(results)} metrics; plot {args.plot}")


if __name__ == "__main__":
    main()
