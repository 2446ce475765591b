"""scripts/tiny/pruning_sweep.py: every setting is run once and the scores land in --out, wherever it is;
MMBench gives two metrics from one run."""

from __future__ import annotations

import json


def test_sweep_writes_results_and_plot_under_new_directories(tmp_path, monkeypatch, tiny_script):
    sweep = tiny_script("pruning_sweep")
    calls, plots = [], []
    scores = {(None, None): 90.0, ("dart", 64): 80.0, ("random", 64): 60.0}

    def fake_run(bench, ckpt, method, budget):
        calls.append((bench, ckpt, method, budget))
        return {"pope": scores[(method, budget)]}, 0.1

    monkeypatch.setattr(sweep, "run", fake_run)
    monkeypatch.setattr(sweep, "plot", lambda results, budgets, path: plots.append(path))
    out = tmp_path / "new" / "dir" / "results"
    sweep.main(["--ckpt", "some/ckpt", "--benchmarks", "pope", "--budgets", "64", "--out", str(out),
                "--plot", str(tmp_path / "plots" / "p.png")])

    assert calls == [("pope", "some/ckpt", None, None), ("pope", "some/ckpt", "dart", 64),
                     ("pope", "some/ckpt", "random", 64)]
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["results"] == {"pope": {"vanilla": 90.0, "dart-64": 80.0, "random-64": 60.0}}
    assert "| 90.0 | 80.0 | 60.0 |" in out.with_suffix(".md").read_text()
    assert plots == [tmp_path / "plots" / "p.png"] and plots[0].parent.is_dir()


def test_mmbench_gives_the_circular_and_the_per_row_accuracy(tmp_path, monkeypatch, tiny_script):
    sweep = tiny_script("pruning_sweep")
    monkeypatch.setattr(sweep, "DATA", tmp_path)
    score = tmp_path / "mmbench" / "answers" / "mmbench_dev_20230712" / "sweep-vanilla.score.json"
    score.parent.mkdir(parents=True)
    score.write_text(json.dumps({"circular": {"accuracy": 20.0, "row_accuracy": 65.0}}))

    class Done:
        returncode = 0

    monkeypatch.setattr(sweep.subprocess, "run", lambda *args, **kwargs: Done())
    scores, _ = sweep.run("mmbench", "some/ckpt", None, None)
    assert scores == {"mmbench": 20.0, "mmbench-rows": 65.0}
    table = sweep.markdown({"mmbench-rows": {"vanilla": 65.0}}, [])
    assert "| mmbench-rows (accuracy per row) | 25.0 | 65.0 |" in table
