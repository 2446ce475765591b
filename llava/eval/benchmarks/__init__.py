"""The benchmarks: one folder each, registered by name.

    llava/eval/benchmarks/<folder>/
        __init__.py   its record(s): `BENCHMARKS = (Benchmark(...), ...)`, read by the registry below
        worker.py     its question reader and prompt rule (where the shared workers in llava/eval/workers/ do not fit)
        scorer.py     its official scoring rule
        convert.py    converters to the files a submission server or an official tool reads
        sample.py     the writer of its held-out sample set, in the official layout (`llava.data.write_eval_sets`)

A `Benchmark` says what a person needs to run it: the files and where they live under DATA_ROOT, the steps of
its script (workers, then scorer and converters), what the score is called and where the scorer writes it.
Everything else reads this registry rather than knowing benchmarks by name:

- `scripts/eval_benchmark.sh NAME` runs a benchmark's steps (`python -m llava.eval.benchmarks plan NAME`),
  and `scripts/v1_5/eval/NAME.sh` / `scripts/v1_6/eval/NAME.sh` are one line over it, generated
  (`python -m llava.eval.benchmarks scripts --write`; the tests check them with `--check`);
- the sweep (`llava.eval.sweep`) sweeps every benchmark with a local score;
- `llava.data.write_eval_sets` writes every sample set;
- the benchmark table of docs/Evaluation.md is `python -m llava.eval.benchmarks table`.

Adding a benchmark is its folder (a record, its scorer, its sample writer) and its tests: docs/Evaluation.md
walks through DocVQA as the example. This module imports no benchmark code beyond the records (no torch), so
that the scripts can read a plan in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Answer:
    """Answer the questions with a worker module, one worker per GPU, merged into `answers`."""

    module: str
    answers: str
    args: tuple[str, ...] = ()

    def words(self) -> list[str]:
        return ["answer", self.module, self.answers, *self.args]


@dataclasses.dataclass(frozen=True)
class Run:
    """`python -m module args...`: a scorer or a converter."""

    module: str
    args: tuple[str, ...] = ()

    def words(self) -> list[str]:
        return ["run", self.module, *self.args]


@dataclasses.dataclass(frozen=True)
class MakeDir:
    path: str

    def words(self) -> list[str]:
        return ["mkdir", self.path]


@dataclasses.dataclass(frozen=True)
class Say:
    """A line for the person running the script (where to submit a file, why a step was skipped)."""

    text: str

    def words(self) -> list[str]:
        return ["say", self.text]


Step = Answer | Run | MakeDir | Say


@dataclasses.dataclass(frozen=True)
class Context:
    """What a plan is made for: the data root and the run's name (scripts/eval_lib.sh's DATA_ROOT and NAME)."""

    data_root: str
    name: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_root, *parts)


def read_score(path: Path, *keys: str) -> float:
    """The number at `keys` in the scorer's JSON result file (FileNotFoundError naming it when it is missing)."""
    if not path.is_file():
        raise FileNotFoundError(f"the scorer wrote no {path}")
    value = json.loads(path.read_text())
    for key in keys:
        value = value[key]
    return float(value)


def answers_score(folder: str, *keys: str) -> Callable[[Path, str], float]:
    """The `score` of a record whose scorer writes DATA_ROOT/<folder>/answers/<name>.score.json: the number at
    `keys` there."""
    return lambda data, name: read_score(data / folder / "answers" / f"{name}.score.json", *keys)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark as a script runs it.

    name: the registry key, the script's name (scripts/v1_5/eval/<name>.sh) and the sweep's.
    title: the benchmark and its split, as papers name it ("DocVQA val").
    metric: what its score is called ("ANLS").
    folder: its folder under DATA_ROOT (playground/data/eval).
    files: the files it reads, relative to the folder, as the official release lays them out.
    plan: the script's steps for a run (workers, then scorer and converters).
    score: the score in % of run NAME, read from the scorer's result file under the data root; None where the
        official score comes from a server or a grader (the sweep leaves such a benchmark out).
    sample: "module:function" writing the held-out sample set (`function(root, seed, n) -> Summary`).
    takes_video: its questions are about videos (only families that take videos can run it).
    lmms_task: the lmms-eval task that runs the same benchmark (docs/LmmsEval.md), if any.
    """

    name: str
    title: str
    metric: str
    folder: str
    files: tuple[str, ...]
    plan: Callable[[Context], list[Step]]
    score: Callable[[Path, str], float] | None
    sample: str | None
    takes_video: bool = False
    lmms_task: str | None = None

    @property
    def workers(self) -> list[str]:
        """The worker modules its script runs (from the plan of any run)."""
        return [s.module for s in self.plan(Context("DATA", "NAME")) if isinstance(s, Answer)]

    def sample_writer(self) -> Callable:
        module, function = (self.sample or "").split(":")
        return getattr(importlib.import_module(module), function)


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def registry() -> dict[str, Benchmark]:
    """Every benchmark, by name: the `BENCHMARKS` of each folder here, folders in alphabetical order."""
    found: dict[str, Benchmark] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for bench in getattr(module, "BENCHMARKS", ()):
            if bench.name in found:
                raise ValueError(f"benchmark {bench.name!r} is registered twice ({info.name})")
            found[bench.name] = bench
    return found


def get(name: str) -> Benchmark:
    benchmarks = registry()
    if name not in benchmarks:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; registered: {', '.join(sorted(benchmarks))}")
    return benchmarks[name]


def plan_lines(bench: Benchmark, context: Context) -> list[str]:
    """The plan as shell words, one step a line (what scripts/eval_benchmark.sh reads)."""
    return [shlex.join(step.words()) for step in bench.plan(context)]
