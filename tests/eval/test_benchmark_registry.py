"""The benchmark registry (llava/eval/benchmarks/) and what is derived from it: the scripts, the sweep's
benchmarks, the docs' tables, the sample sets. Each test derives one side from the other, so that they cannot
disagree."""

import importlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llava.data import layouts
from llava.eval import benchmarks, sweep
from llava.eval.benchmarks import Answer, Context, MakeDir, Run, Say
from llava.eval.benchmarks import __main__ as registry_cli

REPO = Path(__file__).resolve().parents[2]
REGISTRY = benchmarks.registry()


def test_the_registry_holds_every_benchmark_folder():
    folders = {p.name for p in (REPO / "llava" / "eval" / "benchmarks").iterdir()
               if p.is_dir() and (p / "__init__.py").is_file()}
    assert {registry_cli.source_folder(b).split("/")[-2] for b in REGISTRY.values()} == folders
    assert {"textvqa", "ocrbench", "videomme", "mmbench_cn", "qbench_zh"} <= set(REGISTRY)


def test_the_scripts_are_the_registrys():
    assert registry_cli.check_scripts() == []
    for bench in REGISTRY.values():
        script = (REPO / "scripts" / "v1_5" / "eval" / f"{bench.name}.sh").read_text()
        assert script.rstrip().endswith(f'eval_benchmark.sh" {bench.name} "$@"')
        assert (REPO / "scripts" / "v1_6" / "eval" / f"{bench.name}.sh").read_text().count("LLAVA_VERSION=1.6 exec") == 1


def test_a_changed_or_extra_script_is_reported(tmp_path, monkeypatch):
    dirs = {v: tmp_path / v for v in registry_cli.SCRIPT_DIRS}
    monkeypatch.setattr(registry_cli, "SCRIPT_DIRS", dirs)
    monkeypatch.setattr(registry_cli, "REPO", tmp_path)
    registry_cli.write_scripts()
    assert registry_cli.check_scripts() == []
    (dirs["1.5"] / "pope.sh").write_text("#!/usr/bin/env bash\necho edited by hand\n")
    (dirs["1.6"] / "stale.sh").write_text("")
    (dirs["1.5"] / "gqa.sh").unlink()
    assert sorted(registry_cli.check_scripts()) == ["1.5/gqa.sh is missing", "1.5/pope.sh differs from its record",
                                                    "1.6/stale.sh has no record in the registry"]


def test_the_sweep_sweeps_every_benchmark_with_a_local_score():
    assert set(sweep.BENCHMARKS) == {b.name for b in REGISTRY.values() if b.score is not None}
    assert {"vizwiz", "vqav2", "mmvet", "llavabench"}.isdisjoint(sweep.BENCHMARKS)  # scored by servers / graders
    for name, (metric, score) in sweep.BENCHMARKS.items():
        assert (metric, score) == (REGISTRY[name].metric, REGISTRY[name].score)


def test_the_evaluation_docs_hold_the_generated_table_and_a_files_row_per_benchmark():
    text = (REPO / "docs" / "Evaluation.md").read_text()
    assert registry_cli.table() in text, "docs/Evaluation.md: rerun `python -m llava.eval.benchmarks table`"
    files_section = text[text.index("## Where the real files go"):]
    for bench in REGISTRY.values():
        assert f"`{bench.name}.sh`" in files_section, bench.name


def test_every_sample_writer_is_written_once():
    writers = layouts.sample_writers()
    assert len(writers) == len({b.sample for b in REGISTRY.values() if b.sample})
    assert writers["llava.eval.benchmarks.qbench.sample:write_qbench"] is REGISTRY["qbench_zh"].sample_writer()
    for key in writers:
        module, function = key.split(":")
        assert writers[key] is getattr(importlib.import_module(module), function)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_step_of_a_plan_names_a_runnable_module(name):
    bench = REGISTRY[name]
    steps = bench.plan(Context("/data root", "RUN", {"OPENAI_API_KEY": "set"}))
    assert isinstance(steps[0], Answer), "a plan starts by answering the questions"
    for step in steps:
        assert isinstance(step, Answer | Run | MakeDir | Say)
        if isinstance(step, Answer | Run):
            module = importlib.import_module(step.module)
            assert callable(module.main), step.module
        if isinstance(step, Answer):
            assert step.answers.startswith(f"/data root/{bench.folder}/"), step.answers


def test_plan_lines_survive_the_shell_with_spaces_and_quotes():
    context = Context("/data's root/with space", "run $HOME")
    for bench in REGISTRY.values():
        for line, step in zip(benchmarks.plan_lines(bench, context), bench.plan(context)):
            assert shlex.split(line) == step.words()
            # As scripts/eval_benchmark.sh reads it: the line in a variable, `eval "step=($line)"`.
            printed = subprocess.run(["bash", "-c", 'eval "step=($1)"; printf "%s\\n" "${step[@]}"', "_", line],
                                     capture_output=True, text=True, check=True).stdout
            assert printed.splitlines() == [w for w in step.words()], line


def test_the_cli_plans_and_names_an_unknown_benchmark():
    out = subprocess.run([sys.executable, "-m", "llava.eval.benchmarks", "plan", "pope", "--data-root", "/d",
                          "--name", "N"], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.splitlines()[0] == ("answer llava.eval.workers.model_vqa_loader /d/pope/answers/N.jsonl "
                                   "--question-file /d/pope/llava_pope_test.jsonl --image-folder /d/pope/val2014")
    proc = subprocess.run([sys.executable, "-m", "llava.eval.benchmarks", "plan", "nosuch", "--data-root", "/d",
                           "--name", "N"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "unknown benchmark 'nosuch'; registered:" in proc.stderr and "textvqa" in proc.stderr


def test_the_runner_refuses_an_unknown_benchmark_before_any_worker(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "scripts" / "eval_benchmark.sh"), "nosuch"], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "DATA_ROOT": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 2 and "unknown benchmark 'nosuch'" in proc.stderr
    assert not (tmp_path / "nosuch").exists()


def test_reading_the_registry_imports_no_torch():
    code = ("import sys; from llava.eval.benchmarks import registry; registry(); "
            "assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
