"""llava.eval.sweep: the real scripts and scorers on the embedded default, equal budgets for every method,
resuming from its own results file."""

from __future__ import annotations

import json
import statistics

import pytest

from llava.eval import sweep
from llava.model.pruning.config import dart_kept_count, parse_dart_config
from llava.model.pruning.pdrop import kept_count as pdrop_kept_count
from llava.model.pruning import make_dart_config

DATA = sweep.REPO / "playground" / "data" / "eval"


def test_two_benchmarks_three_methods_two_budgets_end_to_end(tmp_path):
    out = tmp_path / "my sweep"
    assert sweep.main(["--out", str(out), "--benchmarks", "pope", "gqa", "--methods", "dart", "fastv", "random",
                       "--tokens", "64", "32", "--name-prefix", "test-sweep"]) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"pope", "gqa"}
    for bench, points in results.items():
        assert set(points) == {"vanilla"} | {f"{m}-{t}" for m in ("dart", "fastv", "random") for t in (64, 32)}
        assert points["vanilla"]["kept"] == 576
        for method in ("dart", "fastv", "random"):  # the same budget keeps the same count for every method
            assert points[f"{method}-64"]["kept"] == 60 and points[f"{method}-32"]["kept"] == 28
    # Each number is the scorer's own, from its result file of that run.
    for key, point in results["pope"].items():
        categories = json.loads((DATA / "pope" / "answers" / f"test-sweep-{key}.score.json").read_text())["categories"]
        assert point["score"] == pytest.approx(100 * statistics.mean(c["accuracy"] for c in categories.values()))
    for key, point in results["gqa"].items():
        score = DATA / "gqa" / "data" / "predictions" / f"test-sweep-{key}" / "testdev_balanced_predictions.score.json"
        assert point["score"] == json.loads(score.read_text())["accuracy"]
    table = (out / "results.md").read_text()
    dart = results["pope"]["dart-64"]["score"]
    assert f"| pope (accuracy, mean of the 3 splits) | dart | " in table and f"{dart:.1f} (60)" in table
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_runs_only_the_points_it_lacks(tmp_path, monkeypatch):
    calls = []

    def fake_point(bench, method, tokens, args):
        calls.append((bench, method, tokens))
        return {"score": 50.0, "kept": sweep.kept_for(tokens) if tokens else 576, "image_tokens": 576, "seconds": 0}

    monkeypatch.setattr(sweep, "run_point", fake_point)
    argv = ["--out", str(tmp_path), "--benchmarks", "pope", "--tokens", "64"]
    assert sweep.main([*argv, "--methods", "dart"]) == 0
    assert calls == [("pope", None, None), ("pope", "dart", 64)]
    calls.clear()
    assert sweep.main([*argv, "--methods", "dart", "random"]) == 0
    assert calls == [("pope", "random", 64)]
    calls.clear()
    assert sweep.main([*argv, "--methods", "dart", "--overwrite"]) == 0
    assert calls == [("pope", None, None), ("pope", "dart", 64)]


@pytest.mark.parametrize("tokens, max_kept, kept", [(64, 56, 60), (32, 24, 28), (16, 8, 12), (132, 128, 132)])
def test_a_token_budget_is_the_dart_familys_largest_count_within_it(tokens, max_kept, kept):
    assert sweep.dart_family_budget(tokens) == max_kept
    assert dart_kept_count(576, parse_dart_config(make_dart_config(max_num_trunction=max_kept))) == kept


@pytest.mark.parametrize("tokens", [64, 32, 16, 192])
def test_pdrop_stages_end_at_the_same_count(tokens):
    _, flags = sweep.point_settings("pdrop", tokens, 576)
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
