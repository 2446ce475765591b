r"""Accuracy against kept image tokens: benchmarks x pruning methods x budgets, through the eval scripts.

    python -m llava.eval.sweep --out runs/sweep                     # the embedded default, on the CPU
    python -m llava.eval.sweep --out runs/sweep-7b --ckpt liuhaotian/llava-v1.5-7b \
        --benchmarks textvqa pope mme gqa --methods dart fastv pdrop visionzip divprune pooling --tokens 192 128 64
    python -m llava.eval.sweep --out runs/sweep-qwen --ckpt Qwen/Qwen2-VL-7B-Instruct --ratios 0.778 0.889

Each point runs the benchmark's own script (`scripts/v1_5/eval/<bench>.sh`: the workers, on every GPU in
CUDA_VISIBLE_DEVICES, and the official scorer), reads the scorer's result file, and takes the image tokens
actually kept from the workers' summary. A budget is the number of image tokens to keep, given the same way
to every method: DART, DART at K=0 (dart_k0), FastV, random, VisionZip, DivPrune, VisPruner, CDPruner and HoloV
keep 4 image pivots + 8 x floor(M / 8) (the largest such count up to the budget), PyramidDrop's stages end at that
same count, SparseVLM runs the official schedule whose target is nearest to it (its kept count is the one the
workers measure), and pooling keeps the largest h x w grid within it (h = floor(sqrt(count))). CDPruner embeds
each question with the tower's CLIP text half (random-init on the embedded default: see its card). Qwen2-VL / 2.5-VL / 3-VL and LLaVA-OneVision take no
token budget: their DART budget is the reduction ratio alone (an image of m tokens keeps 4 + 8 x floor(m x (1 - ratio) / 8), so
the count follows the image's size), given with --ratios; PyramidDrop's stages then end at 1 - ratio of the
image. The runs are named PREFIX-CHECKPOINT-METHOD-BUDGET, so sweeps of different checkpoints keep apart.
The sweep writes OUT/results.json after every point (a rerun skips the points it holds; the scripts resume
their answer files too), and at the end OUT/results.md and OUT/accuracy_vs_tokens.png (one panel per
benchmark, one line per method).
"""

from __future__ import annotations

import argparse
import dataclasses
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

from llava.eval.benchmarks import registry as benchmark_registry

REPO = Path(__file__).resolve().parents[3]
IMAGE_PIVOTS, PIVOTS = 4, 8  # the DART release's 4 image + 4 text pivots
KEPT_LINE = re.compile(r"image tokens kept per question ([\d.]+) of ([\d.]+)")
DEFAULT_CKPTS = {"1.5": "llava-v1.5-tiny", "1.6": "llava-v1.6-tiny"}  # scripts/eval_lib.sh's DEFAULT_CKPT
# What the worker says when an answers file holds another run's answers (llava/eval/core/answers.py).
OTHER_SETTINGS = "made with other settings"


def _sweepable() -> dict[str, tuple[str, Callable[[Path, str], float]]]:
    """The registry's benchmarks that score locally (llava/eval/benchmarks/): (metric label, score in % of run NAME
    under DATA), by name. Benchmarks scored by a server or a grader are left out."""
    return {b.name: (b.metric, b.score) for b in benchmark_registry().values() if b.score is not None}


BENCHMARKS = _sweepable()
METHOD_STYLES = {"dart": "o-", "fastv": "^-", "pdrop": "v-", "random": "s--", "visionzip": "D-", "divprune": "P-",
                 "pooling": "x--", "sparsevlm": "<-", "vispruner": ">-", "cdpruner": "h-", "holov": "*-",
                 "dart_k0": "o:"}


def dart_family_budget(tokens: int) -> int:
    """max_num_trunction M whose DART kept count 4 + 8 * floor(M / 8) is the largest not above `tokens`."""
    if tokens < IMAGE_PIVOTS + PIVOTS:
        raise ValueError(f"a budget of {tokens} image tokens is below DART's smallest, {IMAGE_PIVOTS + PIVOTS}")
    return PIVOTS * ((tokens - IMAGE_PIVOTS) // PIVOTS)


def kept_for(tokens: int) -> int:
    return IMAGE_PIVOTS + dart_family_budget(tokens)


@dataclasses.dataclass(frozen=True)
class Budget:
    """One budget of the sweep: image tokens to keep (LLaVA), or DART's reduction ratio for the families whose
    budget is the ratio alone (the Qwen families, LLaVA-OneVision), where a token count would not be applied."""

    tokens: int | None = None
    ratio: float | None = None

    @property
    def key(self) -> str:
        """In point keys and run names: `64`, or `r0.778` for a ratio."""
        return str(self.tokens) if self.tokens is not None else f"r{self.ratio:g}"

    @property
    def label(self) -> str:
        return f"{self.tokens} budget" if self.tokens is not None else f"ratio {self.ratio:g}"

    def script_args(self) -> list[str]:
        """The eval script's RATIO and MAX_KEPT: a token budget is applied through MAX_KEPT (the 1.6 scripts take
        it as the 1.6 budget, which with the pivots keeps the same count: 4 + min(retain, m - 4) rounded down to
        the 8 pivots); a ratio through RATIO, MAX_KEPT left to the script (a ratio-only family ignores it)."""
        if self.tokens is not None:
            return ["0.778", str(dart_family_budget(self.tokens))]
        return [f"{self.ratio:g}"]

    def kept_fraction(self, image_tokens: int) -> float:
        """The share of an image's tokens the DART family keeps at this budget (where PyramidDrop's stages end)."""
        if self.tokens is not None:
            return (kept_for(self.tokens) + 0.5) / image_tokens  # int(m * r) = the kept count
        return 1 - self.ratio


def point_settings(method: str | None, budget: Budget | None, image_tokens: int) -> tuple[dict[str, str], list[str]]:
    """(script environment, extra worker flags) of one point; method None is the unpruned run."""
    if method is None:
        return {"DART": "0"}, []
    env = {"PRUNING_METHOD": method}
    if method != "pdrop":
        return env, []
    # PyramidDrop's three stages halve the image twice and end at the DART family's count.
    final = budget.kept_fraction(image_tokens)
    ratios = [min(1.0, 4 * final), min(1.0, 2 * final), final]
    return env, ["--pdrop_ratios", ",".join(f"{r:.6f}" for r in ratios)]


def checkpoint_slug(ckpt: str | None, llava_version: str) -> str:
    """The checkpoint's part of the run names, as the eval scripts name runs: its folder or hub repo name."""
    return Path(ckpt.rstrip("/")).name if ckpt else DEFAULT_CKPTS[llava_version]


def run_name(args, method: str | None, budget: Budget | None) -> str:
    return f"{args.name_prefix}-{checkpoint_slug(args.ckpt, args.llava_version)}-{point_key(method, budget)}"


def failure_message(bench: str, key: str, name: str, args, proc: subprocess.CompletedProcess) -> str:
    if OTHER_SETTINGS in proc.stderr:
        # The worker's own advice (--overwrite) would destroy the other sweep's answers: name ours instead.
        return (f"{bench} {key}: the answers of run {name!r} under {args.data_root} were made with other settings "
                f"(another sweep with this --name-prefix, of another checkpoint of the same name or with other "
                f"--max-new-tokens / --eval-args). Give this sweep its own --name-prefix, e.g. "
                f"--name-prefix {args.name_prefix}-{Path(args.out).resolve().name}")
    return f"{bench} {key} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"


def run_point(bench: str, method: str | None, budget: Budget | None, args) -> dict:
    """One scripted evaluation: {score, kept, image_tokens, seconds}."""
    key = point_key(method, budget)
    name = run_name(args, method, budget)
    env_extra, flags = point_settings(method, budget, args.image_tokens)
    eval_args = ["--max_new_tokens", str(args.max_new_tokens), *flags, *args.eval_args.split()]
    # The scripts run from the repository root: paths given relative to here are made absolute first.
    data_root = str(Path(args.data_root).resolve())
    env = {**os.environ, "NAME": name, "EVAL_ARGS": " ".join(eval_args), "DATA_ROOT": data_root, **env_extra}
    if args.ckpt:
        env["CKPT"] = str(Path(args.ckpt).resolve()) if Path(args.ckpt).exists() else args.ckpt
    script_args = budget.script_args() if budget is not None else ["0.778", "128"]
    start = time.time()
    script = f"scripts/v{args.llava_version.replace('.', '_')}/eval/{bench}.sh"
    proc = subprocess.run(["bash", script, *script_args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(failure_message(bench, key, name, args, proc))
    counts = [(float(kept), float(total)) for kept, total in KEPT_LINE.findall(proc.stdout + proc.stderr)]
    if not counts:
        raise RuntimeError(f"{bench} {key}: the workers printed no 'image tokens kept' summary")
    return {
        "score": BENCHMARKS[bench][1](Path(data_root), name),
        "kept": statistics.mean(k for k, _ in counts),
        "image_tokens": statistics.mean(t for _, t in counts),
        "seconds": round(time.time() - start, 1),
        "name": name,
    }


def point_key(method: str | None, budget: Budget | None) -> str:
    return "vanilla" if method is None else f"{method}-{budget.key}"


def markdown(results: dict, methods: list[str], budgets: list[Budget]) -> str:
    """One row per benchmark and method; columns: unpruned, then each budget (the kept count measured)."""
    head = "| benchmark (metric) | method | unpruned | " + " | ".join(b.label for b in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 3)]
    for bench, points in results.items():
        vanilla = points.get("vanilla")
        for method in methods:
            cells = []
            for budget in budgets:
                point = points.get(point_key(method, budget))
                cells.append(f"{point['score']:.1f} ({point['kept']:.0f})" if point else "")
            base = f"{vanilla['score']:.1f} ({vanilla['kept']:.0f})" if vanilla else ""
            lines.append(f"| {bench} ({BENCHMARKS[bench][0]}) | {method} | {base} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Scores in %, from each benchmark's scorer; in brackets the image tokens kept per question.")
    if any(b.ratio is not None for b in budgets):
        lines.append("A ratio is DART's reduction ratio, the budget of the Qwen families and LLaVA-OneVision: an image "
                     "of m tokens keeps 4 + 8 x floor(m x (1 - ratio) / 8), so the count follows the image's size.")
    return "\n".join(lines)


def spaced_ticks(counts: set[int]) -> list[int]:
    """The kept counts to label on a log axis: from the largest down, one within 15% of a labelled one is
    skipped (pooling's 56 beside the others' 60), so the labels never overlap."""
    ticks: list[int] = []
    for count in sorted(counts, reverse=True):
        if not ticks or count < 0.85 * ticks[-1]:
            ticks.append(count)
    return sorted(ticks)


def plot(results: dict, methods: list[str], budgets: list[Budget], path: Path) -> None:
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
            measured = [points[point_key(method, b)] for b in budgets if point_key(method, b) in points]
            if "vanilla" in points:
                measured.append(points["vanilla"])
            measured.sort(key=lambda point: point["kept"])
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


class SweepSettingsError(ValueError):
    """Settings the sweep cannot run as asked (the message says what to pass instead)."""


def checkpoint_family(ckpt: str | None):
    """(family, model_type) of the checkpoint (`llava.model.families`), from its config.json (a local folder,
    else a hub id); (None, None) without --ckpt (the scripts' embedded LLaVA defaults)."""
    if ckpt is None:
        return None, None
    from llava.model.builder import read_config
    from llava.model.families import family_for

    try:
        config = read_config(ckpt)
        return family_for(config), config.model_type
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise SweepSettingsError(f"cannot read the config.json of --ckpt {ckpt} ({exc}): the sweep needs the "
                                 "checkpoint's family to apply the budgets") from None


def anyres_images(ckpt: str | None, llava_version: str) -> bool:
    """Whether the checkpoint (without --ckpt: the scripts' embedded default of --llava-version) encodes an image as
    several crops merged (LLaVA-1.6's anyres, in LLaVA's layout or llava-hf's llava_next), which the methods that
    read one crop's patch grid refuse."""
    from llava.constants import DEFAULT_MODEL_PATH
    from llava.model.builder import read_config

    path = ckpt or str(Path(DEFAULT_MODEL_PATH).parent / DEFAULT_CKPTS[llava_version])
    try:
        config = read_config(path)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise SweepSettingsError(f"cannot read the config.json of {path} ({exc})") from None
    return config.model_type == "llava_next" or str(getattr(config, "image_aspect_ratio", None) or "pad").startswith(
        "anyres")


def resolve_budgets(args: argparse.Namespace, ratio_only: bool, model_type: str | None = None) -> list[Budget]:
    if ratio_only:
        if args.ratios is None:
            raise SweepSettingsError(
                f"--ckpt {args.ckpt} is a {model_type} checkpoint, whose DART budget is the reduction ratio alone "
                "(an image of m tokens keeps 4 + 8 x floor(m x (1 - ratio) / 8)): a token budget"
                f"{' (--tokens)' if args.tokens else ''} would not be applied. Give the budgets as ratios, "
                "e.g. --ratios 0.778 0.889")
        return [Budget(ratio=ratio) for ratio in args.ratios]
    if args.ratios is not None:
        raise SweepSettingsError("--ratios is the budget of the families that read the reduction ratio alone "
                                 "(the Qwen families, LLaVA-OneVision); this checkpoint's budget is a number of "
                                 "image tokens: --tokens")
    tokens = args.tokens or [64, 32, 16]
    for count in tokens:
        dart_family_budget(count)  # raises for a budget below the pivots
    return [Budget(tokens=count) for count in tokens]


def resolve_methods(methods: list[str] | None, before_llm_methods: bool,
                    vision_cls_attention: bool = True, refused_methods=None, anyres: bool = False) -> list[str]:
    """The methods asked for, or by default every method the family runs (some families do not run the methods
    that reduce the image before the language model, or those of them that read the tower's [CLS] token, or refuse
    some for a reason of their own: `refused_methods`, name -> why), and of those that read one crop's patch grid
    none when the images are anyres."""
    from llava.model.pruning import PruningInput, get_method

    own = dict(refused_methods or {})
    if anyres:
        own.update({m: "it reads one crop's patch grid; this checkpoint's images are anyres, several crops merged"
                    for m in METHOD_STYLES if get_method(m).one_crop and m not in own})
    runnable = [m for m in METHOD_STYLES if (before_llm_methods or not get_method(m).before_llm)
                and (vision_cls_attention or PruningInput.VISION_CLS_ATTENTION not in get_method(m).inputs)
                and m not in own]
    if methods is None:
        return runnable
    refused = [m for m in methods if m not in runnable and m not in own]
    if refused:
        raise SweepSettingsError(f"{', '.join(refused)} reduce the image before the language model (or read the "
                                 f"vision tower's [CLS] token), which this checkpoint's family does not support: "
                                 f"leave them out of --methods "
                                 f"({' '.join(runnable)})")
    refused = [f"{m} ({own[m]})" for m in methods if m in own]
    if refused:
        raise SweepSettingsError(f"this checkpoint does not run {', '.join(refused)}: leave them out of "
                                 f"--methods ({' '.join(runnable)})")
    return methods


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for results.json, results.md and the plot")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: the scripts' embedded default)")
    parser.add_argument("--llava-version", choices=["1.5", "1.6"], default="1.5",
                        help="1.6: the scripts/v1_6 scripts (the 1.6 budget, the tiny 1.6 default)")
    parser.add_argument("--benchmarks", nargs="+", default=["pope", "gqa", "sqa"], choices=list(BENCHMARKS))
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHOD_STYLES),
                        help="default: every method the checkpoint's family runs")
    budgets = parser.add_mutually_exclusive_group()
    budgets.add_argument("--tokens", nargs="+", type=int, default=None,
                         help="image tokens to keep (LLaVA; default 64 32 16)")
    budgets.add_argument("--ratios", nargs="+", type=float, default=None,
                         help="DART reduction ratios: the budgets of the Qwen families and LLaVA-OneVision, which "
                              "take no token count")
    parser.add_argument("--image-tokens", type=int, default=576, help="image tokens per image unpruned (PDrop's ratios)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answers are short; bounds a rambling one")
    parser.add_argument("--eval-args", default="", help="more worker flags, e.g. '--batch-size 8'")
    parser.add_argument("--data-root", default=str(REPO / "playground" / "data" / "eval"),
                        help="the benchmarks' data, in the scripts' layout (their DATA_ROOT)")
    parser.add_argument("--name-prefix", default="sweep",
                        help="prefix of the runs' answer-file names: PREFIX-CHECKPOINT-METHOD-BUDGET")
    parser.add_argument("--overwrite", action="store_true", help="rerun the points OUT/results.json holds")
    args = parser.parse_args(argv)
    try:
        if args.ratios is not None and not all(0 <= ratio < 1 for ratio in args.ratios):
            raise SweepSettingsError(f"a reduction ratio is a number in [0, 1), got {args.ratios}")
        family, model_type = checkpoint_family(args.ckpt)
        args.budgets = resolve_budgets(args, family is not None and family.ratio_budget, model_type)
        args.methods = resolve_methods(args.methods, family is None or family.before_llm_methods,
                                       family is None or getattr(family, "vision_cls_attention", True),
                                       getattr(family, "refused_methods", None),
                                       anyres_images(args.ckpt, args.llava_version))
    except ValueError as exc:
        parser.error(str(exc))
    return args


def saved_results(results_path: Path, args: argparse.Namespace) -> dict:
    """What an earlier run of this sweep saved, to resume; refused when it is another checkpoint's."""
    if args.overwrite or not results_path.is_file():
        return {}
    saved = json.loads(results_path.read_text())
    if saved.get("ckpt") != args.ckpt:
        raise SweepSettingsError(f"{results_path} holds a sweep of {saved.get('ckpt') or 'the embedded default'}, "
                                 f"not of {args.ckpt or 'the embedded default'}: give this sweep another --out")
    return saved


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    try:
        saved = saved_results(results_path, args)
    except SweepSettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results: dict[str, dict] = {bench: dict(saved.get("results", {}).get(bench, {})) for bench in args.benchmarks}
    points = [(bench, method, budget) for bench in args.benchmarks
              for method, budget in [(None, None)] + [(m, b) for b in args.budgets for m in args.methods]]
    started = time.time()
    progress = tqdm(points, desc="sweep", unit="point", file=sys.stderr)
    for bench, method, budget in progress:
        key = point_key(method, budget)
        progress.set_postfix_str(f"{bench} {key}")
        if key in results[bench]:
            continue
        try:
            results[bench][key] = run_point(bench, method, budget, args)
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        results_path.write_text(json.dumps({"ckpt": args.ckpt, "results": results}, indent=2) + "\n")
    table = markdown(results, args.methods, args.budgets)
    (out / "results.md").write_text(table + "\n")
    print(table)
    try:
        plot(results, args.methods, args.budgets, out / "accuracy_vs_tokens.png")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sweep: {len(points)} points ({len(args.benchmarks)} benchmarks x {len(args.methods)} methods x "
          f"{len(args.budgets)} budgets + unpruned) in {time.time() - started:.0f} s; {out}/results.md, "
          f"{out}/accuracy_vs_tokens.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
