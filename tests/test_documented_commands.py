"""Every command the README and docs/ show runs as written: its `python -m llava...` module exists and takes
each flag given, its `bash scripts/...` script exists, and the docs say once how to get the environment."""

import argparse
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from recording_python import fake_python
from suite_timeouts import hang_timeout

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "checkpoints/llava-v1.5-tiny/README.md"]
SHELL_FENCES = ("", "bash", "sh", "console")


# A prose line that starts a new block: an inline code span never continues across one.
BLOCK_START = re.compile(r"\s*(?:$|\||#|[-*] |\d+\. )")


def code_snippets(path: Path) -> list[str]:
    """Shell code blocks (continuation lines joined) and inline code spans of a Markdown file (a span may wrap
    onto the next line of its paragraph or list item, as Markdown allows)."""
    snippets, block, fence, prose = [], None, None, []

    def end_prose():
        snippets.extend(re.findall(r"`([^`]+)`", " ".join(prose)))
        prose.clear()

    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            end_prose()
            if block is None:
                fence, block = line.strip()[3:].strip(), []
            else:
                if fence in SHELL_FENCES:
                    snippets += re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines()
                block = None
            continue
        if block is not None:
            block.append(line)
            continue
        if BLOCK_START.match(line):
            end_prose()
        prose.append(line)
        if line.lstrip().startswith(("|", "#")):  # a table row or a heading is a block of its own
            end_prose()
    end_prose()
    return snippets


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """(module or script, its arguments) for each `-m llava.*` and `bash scripts/*` in the file."""
    found = []
    for snippet in code_snippets(path):
        try:
            words = shlex.split(snippet, comments=True)
        except ValueError:  # an inline span with an unmatched quote is prose, not a command
            continue
        for i, word in enumerate(words[:-1]):
            if word == "-m" and re.fullmatch(r"llava(\.[a-z_0-9]+)+", words[i + 1]):  # not `llava.eval.<worker>`
                found.append((words[i + 1], words[i + 2:]))
            elif word == "bash" and words[i + 1].startswith("scripts/"):
                found.append((words[i + 1], words[i + 2:]))
    return found


ALL = [(path, target, args) for path in DOCS for target, args in commands(path)]


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def module_parser(module_name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a module's `main` builds (it stops at parsing, before any work)."""

    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    module = importlib.import_module(module_name)
    if not hasattr(module, "main"):  # a package run by its __main__ (`python -m llava.model.families`)
        module = importlib.import_module(f"{module_name}.__main__")
    try:
        module.main([])
    except _Parsed as parsed:
        return parsed.parser
    raise AssertionError(f"{module_name}.main did not parse its arguments")


def _flags(args: list[str]) -> list[str]:
    return [word.strip("[]").split("=", 1)[0] for word in args if word.strip("[]").startswith("--")]


def test_a_code_span_wrapped_onto_the_next_line_is_still_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Continue a round: `FROM=x ROUNDS=9 bash\nscripts/tiny/train_detail.sh 1.5`, or run `python -m\n"
                    "llava.eval.sweep --ckpt c`.\n\n| a `half | row |\n| `bash scripts/b.sh` | next row |\n"
                    "- item `bash scripts/c.sh`\n- item two\n")
    assert commands(page) == [("scripts/tiny/train_detail.sh", ["1.5"]), ("llava.eval.sweep", ["--ckpt", "c"]),
                              ("scripts/b.sh", []), ("scripts/c.sh", [])]


def test_the_docs_show_commands_at_all():
    modules = {target for _, target, _ in ALL if target.startswith("llava.")}
    assert {"llava.eval.run_llava", "llava.serve.demo", "llava.eval.model_vqa_loader"} <= modules
    assert any(target.startswith("scripts/") for _, target, _ in ALL)


@pytest.mark.parametrize("path,target,args", ALL, ids=[f"{p.name}:{t}" for p, t, _ in ALL])
def test_a_documented_command_exists_with_its_flags(path, target, args, monkeypatch):
    if target.startswith("scripts/"):
        assert (REPO / target).is_file(), f"{path.name}: {target} does not exist"
        return
    assert importlib.util.find_spec(target) is not None, f"{path.name}: no module {target}"
    parser = module_parser(target, monkeypatch)
    for action in parser._actions:  # a subcommand's flags are its own parser's (`python -m llava.eval.benchmarks plan`)
        if isinstance(action, argparse._SubParsersAction) and args and args[0] in action.choices:
            parser = action.choices[args[0]]
    known = set(parser._option_string_actions)
    unknown = [flag for flag in _flags(args) if flag not in known]
    assert not unknown, f"{path.name}: {target} has no flag(s) {unknown}"


def test_docs_that_show_bare_python_commands_say_how_to_get_the_environment():
    """`python` in the docs is the project's virtualenv: the README says once how to activate it, and every
    other page that runs `python -m llava...` points there or says it too."""
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme
    for path in DOCS[1:]:
        if any(target.startswith("llava.") for p, target, _ in ALL if p == path):
            text = path.read_text()
            assert "source .venv/bin/activate" in text or ".venv/bin/python" in text, path.name


# -- what a user with real weights needs: the benchmarks' data, a CUDA torch, tiny checkpoints to try ---------

INPUT_FLAGS = ("--question-file", "--questions-file", "--image-folder", "--annotation-file", "--annotation-dir")


def data_table_rows() -> dict[str, str]:
    """docs/Evaluation.md's table of official data: script name -> its row."""
    text = (REPO / "docs" / "Evaluation.md").read_text()
    section = text[text.index("## Where the real files go"):]
    rows = {}
    for line in section.splitlines():
        for script in re.findall(r"`(\w+)\.sh`", line.split("|")[1] if line.startswith("|") else ""):
            rows[script] = line
    return rows


def files_a_script_reads(script: Path, tmp_path: Path) -> list[str]:
    """The data paths (relative to DATA_ROOT) that `script` hands its workers and scorers as inputs, recorded by a
    fake python."""
    log = tmp_path / f"{script.stem}.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    data = tmp_path / "data"
    env = {**os.environ, "PYTHON": str(recorder), "CKPT": "/ckpt/model", "DATA_ROOT": str(data), "OPENAI_API_KEY": ""}
    for name in ("CUDA_VISIBLE_DEVICES", "NAME", "DART", "EVAL_ARGS", "BATCH_SIZE"):
        env.pop(name, None)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=hang_timeout(300))
    assert proc.returncode == 0, proc.stderr
    inputs = []
    for call in log.read_text().splitlines():
        words = call.split()
        inputs += [words[i + 1] for i, word in enumerate(words[:-1]) if word in INPUT_FLAGS]
    return [str(Path(path).relative_to(data)) for path in inputs]


def test_every_benchmark_scripts_official_data_is_in_the_evaluation_docs(tmp_path):
    rows = data_table_rows()
    scripts = sorted((REPO / "scripts" / "v1_5" / "eval").glob("*.sh"))
    assert sorted(rows) == [s.stem for s in scripts]
    for script in scripts:
        row = rows[script.stem]
        assert "](http" in row, f"{script.name}: no link to the official source"
        for path in files_a_script_reads(script, tmp_path):
            assert f"`{path}" in row, f"{script.name} reads {path}, which its row in docs/Evaluation.md does not name"


def test_the_docs_show_a_cuda_torch_install_and_the_tiny_checkpoints_command():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^TORCH_BUILD=cu\d+ bash scripts/setup_env\.sh", readme, re.MULTILINE)
    assert re.search(r"`\.venv/bin/pip install torch==[\d.]+\+cu\d+ --index-url https://download\.pytorch\.org/whl/cu\d+`",
                     readme)
    documented = {(path.name, target, tuple(args)) for path, target, args in ALL}
    assert ("Checkpoints.md", "llava.model.released_layouts", ("--list",)) in documented
    assert any(target == "llava.model.released_layouts" and "--repo" in args and "--out" in args
               for _, target, args in documented)
