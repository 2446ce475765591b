"""llava.eval.sweep: the real scripts and scorers on the embedded default, equal budgets for every method,
resuming from its own results file; Qwen checkpoints swept by their own budget, the reduction ratio; run names
that keep sweeps of different checkpoints apart."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval import sweep
from llava.eval.sweep import Budget
from llava.model.pruning.config import dart_kept_count, parse_dart_config
from llava.model.pruning.pdrop import kept_count as pdrop_kept_count
from llava.model.pruning import make_dart_config
from llava.model.released_layouts import build_released_checkpoint

DATA = sweep.REPO / "playground" / "data" / "eval"
EMBEDDED = sweep.REPO / "checkpoints" / "llava-v1.5-tiny"
# The sample sets' question files, and the outputs of earlier runs a copy leaves out.
QUESTION_FILES = {"pope": "llava_pope_test.jsonl", "gqa": "llava_gqa_testdev_balanced.jsonl"}
OUTPUTS = shutil.ignore_patterns("answers", "answers_upload", "predictions", "*_predictions*.json")


def sample_subset(root: Path, bench: str, questions: int) -> Path:
    """A copy of a shipped sample set under `root` with its first `questions` questions (the scorers score what
    was answered), so that the sweeps' answer files land outside the repository."""
    shutil.copytree(DATA / bench, root / bench, ignore=OUTPUTS)
    path = root / bench / QUESTION_FILES[bench]
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:questions]))
    return root


@pytest.fixture
def pope_subset(tmp_path):
    return sample_subset(tmp_path / "data", "pope", 6)


@pytest.mark.slow
def test_two_benchmarks_two_methods_end_to_end(tmp_path):
    """DART and FastV (one prunes by duplication, one by attention) at one budget: each point is a real script run,
    so two methods suffice (the others reach the scripts the same way, point_settings' PRUNING_METHOD); more
    budgets are more of the same runs (their table: test_the_table_has_a_column_per_budget)."""
    data = sample_subset(sample_subset(tmp_path / "data", "pope", 6), "gqa", 6)
    out = tmp_path / "my sweep"
    assert sweep.main(["--out", str(out), "--benchmarks", "pope", "gqa", "--methods", "dart", "fastv",
                       "--tokens", "64", "--name-prefix", "test-sweep", "--data-root", str(data)]) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"pope", "gqa"}
    for bench, points in results.items():
        assert set(points) == {"vanilla", "dart-64", "fastv-64"}
        assert points["vanilla"]["kept"] == 576
        assert points["dart-64"]["kept"] == points["fastv-64"]["kept"] == 60  # the same budget, the same count
    # Each number is the scorer's own, from its result file of that run (named after the checkpoint too).
    for key, point in results["pope"].items():
        score = data / "pope" / "answers" / f"test-sweep-llava-v1.5-tiny-{key}.score.json"
        categories = json.loads(score.read_text())["categories"]
        assert point["score"] == pytest.approx(100 * statistics.mean(
            c["accuracy"] for c in categories.values() if c["samples"]))
    for key, point in results["gqa"].items():
        score = (data / "gqa" / "data" / "predictions" / f"test-sweep-llava-v1.5-tiny-{key}"
                 / "testdev_balanced_predictions.score.json")
        assert point["score"] == json.loads(score.read_text())["accuracy"]
    assert not list((DATA / "pope").glob("answers/test-sweep-llava-v1.5-tiny-*"))  # --data-root reached the scripts
    table = (out / "results.md").read_text()
    dart = results["pope"]["dart-64"]["score"]
    assert "| unpruned | 64 budget |" in table
    assert "| pope (accuracy, mean of the 3 splits) | dart | " in table and f"{dart:.1f} (60)" in table
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def fake_sweep_points(monkeypatch) -> list:
    """Replace the scripted runs by instant ones; returns the (benchmark, method, budget) of each run."""
    calls = []

    def fake_point(bench, method, budget, args):
        calls.append((bench, method, budget))
        kept = 576 if budget is None else sweep.kept_for(budget.tokens)
        return {"score": 50.0, "kept": kept, "image_tokens": 576, "seconds": 0}

    monkeypatch.setattr(sweep, "run_point", fake_point)
    return calls


def test_the_table_has_a_column_per_budget(tmp_path, monkeypatch):
    calls = fake_sweep_points(monkeypatch)
    assert sweep.main(["--out", str(tmp_path), "--benchmarks", "pope", "gqa", "--methods", "dart", "random",
                       "--tokens", "64", "32"]) == 0
    assert len(calls) == 2 * (1 + 2 * 2)
    table = (tmp_path / "results.md").read_text().splitlines()
    assert table[0] == "| benchmark (metric) | method | unpruned | 64 budget | 32 budget |"
    rows = [line for line in table if line.startswith("| pope") or line.startswith("| gqa")]
    assert [row.split(" | ")[1:] for row in rows] == [
        [method, "50.0 (576)", "50.0 (60)", "50.0 (28) |"] for _ in ("pope", "gqa") for method in ("dart", "random")]
    assert (tmp_path / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_runs_only_the_points_it_lacks(tmp_path, monkeypatch):
    calls = fake_sweep_points(monkeypatch)
    argv = ["--out", str(tmp_path), "--benchmarks", "pope", "--tokens", "64"]
    assert sweep.main([*argv, "--methods", "dart"]) == 0
    assert calls == [("pope", None, None), ("pope", "dart", Budget(tokens=64))]
    calls.clear()
    assert sweep.main([*argv, "--methods", "dart", "random"]) == 0
    assert calls == [("pope", "random", Budget(tokens=64))]
    calls.clear()
    assert sweep.main([*argv, "--methods", "dart", "--overwrite"]) == 0
    assert calls == [("pope", None, None), ("pope", "dart", Budget(tokens=64))]


def test_an_out_folder_of_another_checkpoints_sweep_is_not_resumed(tmp_path, monkeypatch, capsys):
    calls = fake_sweep_points(monkeypatch)
    argv = ["--out", str(tmp_path / "out"), "--benchmarks", "pope", "--tokens", "64", "--methods", "dart"]
    assert sweep.main(argv) == 0
    calls.clear()
    assert sweep.main([*argv, "--ckpt", str(EMBEDDED)]) == 2
    assert calls == []
    assert "holds a sweep of the embedded default" in capsys.readouterr().err


@pytest.mark.parametrize("tokens, max_kept, kept", [(64, 56, 60), (32, 24, 28), (16, 8, 12), (132, 128, 132)])
def test_a_token_budget_is_the_dart_familys_largest_count_within_it(tokens, max_kept, kept):
    assert sweep.dart_family_budget(tokens) == max_kept
    assert Budget(tokens=tokens).script_args() == ["0.778", str(max_kept)]
    assert dart_kept_count(576, parse_dart_config(make_dart_config(max_num_trunction=max_kept))) == kept


@pytest.mark.parametrize("tokens", [64, 32, 16, 192])
def test_pdrop_stages_end_at_the_same_count(tokens):
    _, flags = sweep.point_settings("pdrop", Budget(tokens=tokens), 576)
    ratios = [float(r) for r in flags[flags.index("--pdrop_ratios") + 1].split(",")]
    assert pdrop_kept_count(576, ratios[-1]) == sweep.kept_for(tokens)
    assert ratios == sorted(ratios, reverse=True) and ratios[0] <= 1


def test_a_budget_below_the_pivots_is_refused(capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--tokens", "8"])
    assert "below DART's smallest, 12" in capsys.readouterr().err


def test_plot_labels_skip_a_count_beside_a_labelled_one():
    assert sweep.spaced_ticks({576, 60, 56, 28, 25, 12}) == [12, 28, 60, 576]
    assert sweep.spaced_ticks({576, 132, 121, 64}) == [64, 132, 576]


# -- Qwen2-VL / Qwen2.5-VL: the budget is the reduction ratio -------------------------------------------


@pytest.fixture
def qwen_config_only(tmp_path):
    """What the sweep reads of a checkpoint before running it: its config.json."""
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    return tmp_path / "qwen"


@pytest.mark.parametrize("budget", [["--tokens", "64", "16"], []], ids=["tokens", "default"])
def test_token_budgets_for_a_qwen_checkpoint_are_refused_naming_the_ratios(qwen_config_only, budget, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--ckpt", str(qwen_config_only), *budget])
    error = capsys.readouterr().err
    assert "qwen2_vl checkpoint, whose DART budget is the reduction ratio alone" in error
    assert "would not be applied" in error and "--ratios 0.778 0.889" in error


def test_ratios_sweep_a_qwen_checkpoint_with_the_methods_it_runs(qwen_config_only):
    args = sweep.parse_args(["--out", "x", "--ckpt", str(qwen_config_only), "--ratios", "0.778", "0.5"])
    assert args.budgets == [Budget(ratio=0.778), Budget(ratio=0.5)]
    # Of those before the language model, the ones reading the [CLS] token (and CDPruner's CLIP text half) do not run.
    assert args.methods == ["dart", "fastv", "pdrop", "random", "divprune", "pooling", "sparsevlm", "dart_k0"]
    assert Budget(ratio=0.5).script_args() == ["0.5"]  # RATIO; MAX_KEPT is the script's default, unread by Qwen
    _, flags = sweep.point_settings("pdrop", Budget(ratio=0.75), 64)
    assert flags == ["--pdrop_ratios", "1.000000,0.500000,0.250000"]  # PDrop ends at 1 - ratio of the image


def test_methods_a_qwen_checkpoint_cannot_run_and_ratios_for_llava_are_refused(qwen_config_only, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--ckpt", str(qwen_config_only), "--ratios", "0.5", "--methods", "dart",
                          "visionzip", "holov"])
    assert "visionzip, holov reduce the image before the language model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--ckpt", str(qwen_config_only), "--ratios", "0.5", "--methods", "cdpruner"])
    assert "no text half" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--ratios", "0.5"])
    assert "this checkpoint's budget is a number of image tokens: --tokens" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--ckpt", str(qwen_config_only), "--ratios", "1.5"])
    assert "a reduction ratio is a number in [0, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_qwen_sweep_keeps_what_each_ratio_says(pope_subset, tmp_path):
    ckpt = build_released_checkpoint("Qwen/Qwen2-VL-7B-Instruct", tmp_path / "qwen2-vl-tiny")
    out = tmp_path / "out"
    assert sweep.main(["--out", str(out), "--ckpt", str(ckpt), "--benchmarks", "pope", "--methods", "dart",
                       "--ratios", "0.5", "0.889", "--data-root", str(pope_subset), "--max-new-tokens", "2"]) == 0
    points = json.loads((out / "results.json").read_text())["results"]["pope"]
    # 64 image tokens per sample image (the tiny processor's max_pixels): 4 + 8 x floor(64 x (1 - ratio) / 8).
    assert {key: point["kept"] for key, point in points.items()} == {"vanilla": 64, "dart-r0.5": 36,
                                                                        "dart-r0.889": 4}
    table = (out / "results.md").read_text()
    assert "| unpruned | ratio 0.5 | ratio 0.889 |" in table
    assert "(36) | " in table and "(4) |" in table and "reduction ratio, the budget of the Qwen families" in table


# -- run names: sweeps of different checkpoints keep apart ----------------------------------------------


def test_run_names_carry_the_checkpoint():
    args = sweep.parse_args(["--out", "x", "--ckpt", str(EMBEDDED)])
    assert sweep.run_name(args, "dart", Budget(tokens=64)) == "sweep-llava-v1.5-tiny-dart-64"
    assert sweep.checkpoint_slug("liuhaotian/llava-v1.5-7b", "1.5") == "llava-v1.5-7b"
    assert sweep.checkpoint_slug("/models/qwen2-vl-7b/", "1.5") == "qwen2-vl-7b"
    assert sweep.checkpoint_slug(None, "1.6") == "llava-v1.6-tiny"  # the scripts' default for 1.6
    assert sweep.run_name(args, None, None) == "sweep-llava-v1.5-tiny-vanilla"


@pytest.mark.slow
def test_sweeps_of_two_checkpoints_into_two_folders_keep_apart(pope_subset, tmp_path):
    other = shutil.copytree(EMBEDDED, tmp_path / "retrained-tiny")
    argv = ["--benchmarks", "pope", "--methods", "dart", "--tokens", "64", "--data-root", str(pope_subset)]
    assert sweep.main(["--out", str(tmp_path / "first"), *argv]) == 0
    assert sweep.main(["--out", str(tmp_path / "second"), "--ckpt", str(other), *argv]) == 0
    answers = sorted(p.name for p in (pope_subset / "pope" / "answers").glob("*.jsonl"))
    assert answers == ["sweep-llava-v1.5-tiny-dart-64.jsonl", "sweep-llava-v1.5-tiny-vanilla.jsonl",
                       "sweep-retrained-tiny-dart-64.jsonl", "sweep-retrained-tiny-vanilla.jsonl"]


@pytest.mark.slow
def test_a_name_clash_advises_the_sweeps_own_name_prefix(pope_subset, tmp_path, capsys):
    answers = pope_subset / "pope" / "answers"
    answers.mkdir()
    other_run = {"question_id": 1, "prompt": "?", "text": "Yes", "metadata": {"settings_id": "0123456789ab"}}
    (answers / "sweep-llava-v1.5-tiny-vanilla.jsonl").write_text(json.dumps(other_run) + "\n")
    assert sweep.main(["--out", str(tmp_path / "mine"), "--benchmarks", "pope", "--methods", "dart", "--tokens", "64",
                       "--data-root", str(pope_subset)]) == 1
    error = capsys.readouterr().err
    assert "the answers of run 'sweep-llava-v1.5-tiny-vanilla'" in error and "were made with other settings" in error
    assert "Give this sweep its own --name-prefix, e.g. --name-prefix sweep-mine" in error
    assert "--overwrite" not in error  # the worker's advice would destroy the other sweep's answers


ONE_CROP = ["cdpruner", "holov", "pooling", "visionzip", "vispruner"]  # their reduce reads one crop's patch grid


@pytest.mark.parametrize("ckpt", [[], ["--ckpt", str(Path(DEFAULT_MODEL_PATH).parent / "llava-v1.6-tiny")]])
def test_an_anyres_checkpoint_sweeps_without_the_one_crop_methods_and_refuses_them_up_front(ckpt, capsys):
    from llava.model.pruning import get_method, method_names

    assert sorted(m for m in method_names() if get_method(m).one_crop) == ONE_CROP
    args = sweep.parse_args(["--out", "x", "--llava-version", "1.6", *ckpt])
    assert args.methods == [m for m in sweep.METHOD_STYLES if m not in ONE_CROP]
    with pytest.raises(SystemExit):
        sweep.parse_args(["--out", "x", "--llava-version", "1.6", *ckpt, "--methods", "dart", "pooling"])
    assert ("this checkpoint does not run pooling (it reads one crop's patch grid; this checkpoint's images are "
            "anyres, several crops merged)") in capsys.readouterr().err


def test_every_method_resolves_on_the_embedded_default():
    from llava.model.pruning import method_names

    assert sorted(sweep.METHOD_STYLES) == method_names()  # each method has its line style, so it can be asked for
    args = sweep.parse_args(["--out", "x", "--methods", *method_names()])
    assert args.methods == method_names() and sweep.resolve_methods(None, True) == list(sweep.METHOD_STYLES)
