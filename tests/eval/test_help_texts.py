"""`--help` shows each entry point's examples as they are written in its docstring: one command per example, its
backslash continuations kept (a docstring that is not a raw string loses them, joining an example into one line)."""

import ast
import importlib
import runpy
import sys
from pathlib import Path

import pytest

from llava.eval.benchmarks import Context, registry

REPO = Path(__file__).resolve().parents[2]

# Every command whose --help prints its module docstring with multi-line examples: every worker, scorer and converter a benchmark's script runs (the registry's plans), and the other entry points.
PLANNED = sorted({step.module for bench in registry().values()
                  for step in bench.plan(Context("DATA", "NAME", {"OPENAI_API_KEY": "set"})) if hasattr(step, "module")})
MODULES = PLANNED + ["llava.eval.cli.run_llava", "llava.eval.sweep", "llava.serve.cli"]
SHORT_DOCSTRINGS = {"llava.eval.benchmarks.gqa.scorer", "llava.eval.benchmarks.llavabench.summarize",
                    "llava.eval.benchmarks.mme.convert", "llava.eval.benchmarks.mme.scorer"}  # one-line usage only
SCRIPTS = ["scripts/merge_lora_weights.py", "scripts/tiny/package_checkpoint.py"]


def continued_lines(source_file: Path) -> list[str]:
    """The docstring's lines that end in a backslash continuation, as the source writes them."""
    source = source_file.read_text()
    docstring = ast.get_source_segment(source, ast.parse(source).body[0].value)
    return [line.strip() for line in docstring.splitlines() if line.endswith("\\")]


def help_text(capsys, run) -> str:
    with pytest.raises(SystemExit) as stopped:
        run()
    assert stopped.value.code == 0
    return capsys.readouterr().out


def check_examples_shown_as_written(source_file: Path, shown: str) -> None:
    expected = continued_lines(source_file)
    assert expected, f"{source_file} has no multi-line example to check"
    lines = [line.strip() for line in shown.splitlines()]
    missing = [line for line in expected if line not in lines]
    assert not missing, f"--help of {source_file.name} lost the line breaks of: {missing}"


@pytest.mark.parametrize("module", [m for m in MODULES if m not in SHORT_DOCSTRINGS])
def test_help_shows_the_examples_with_their_line_continuations(module, capsys):
    entry_point = importlib.import_module(module)
    shown = help_text(capsys, lambda: entry_point.main(["--help"]))
    check_examples_shown_as_written(Path(entry_point.__file__), shown)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_help_shows_the_examples_with_their_line_continuations(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.syspath_prepend(str(REPO / Path(script).parent))
    shown = help_text(capsys, lambda: runpy.run_path(str(REPO / script), run_name="__main__"))
    check_examples_shown_as_written(REPO / script, shown)


def test_every_module_docstring_with_line_continuations_is_a_raw_string():
    """The cause, for every module: a backslash at a line's end inside a plain string joins the lines."""
    joined = []
    for path in sorted((REPO / "llava").rglob("*.py")):
        source = path.read_text()
        body = ast.parse(source).body
        if not body or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Constant):
            continue
        docstring = ast.get_source_segment(source, body[0].value)
        if "\\\n" in docstring and not docstring.startswith(("r", "R")):
            joined.append(str(path.relative_to(REPO)))
    assert not joined, f"module docstrings whose line continuations Python joins (make them r-strings): {joined}"
