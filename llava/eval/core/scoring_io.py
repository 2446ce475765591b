"""File helpers shared by the benchmark scorers and converters (`llava/eval/eval_*.py`, `convert_*.py`).

The scorers keep their rules in pure functions; everything that touches files goes through here so that
every scorer reads answer JSONL the same way, writes its result JSON the same way and ends with one
summary line on stdout.

Answer files are LLaVA's JSONL: one `{"question_id", "prompt", "text", "answer_id", "model_id",
"metadata"}` object per line.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from typing import Any, Iterable


class ScoringInputError(ValueError):
    """An input file is missing, unreadable or not in the expected format; the message names the file."""


def qid(value: Any) -> str:
    """The key used to pair question ids across files: JSON writers disagree on int vs str (5 vs "5")."""
    return str(value)


def read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ScoringInputError(f"{path}: not valid JSON ({e})") from None


def read_jsonl(path: str, bad_lines: list[int] | None = None) -> list[dict]:
    """All objects of a JSON-lines file; blank lines are skipped.

    A line that is not a JSON object raises `ScoringInputError` naming the file and line, unless the caller
    passes a `bad_lines` list: then its (1-based) number is appended and the line skipped, which is what
    LLaVA's submission converters do (they count "error lines" and go on).
    """
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                if bad_lines is None:
                    raise ScoringInputError(f"{path}:{lineno}: not a JSON object ({e})") from None
                bad_lines.append(lineno)
                continue
            rows.append(row)
    return rows


def read_answers(path: str, bad_lines: list[int] | None = None) -> list[dict]:
    """Answer JSONL rows; each must carry `question_id` and `text`, and all were made with the same settings."""
    rows = read_jsonl(path, bad_lines)
    for i, row in enumerate(rows):
        missing = [k for k in ("question_id", "text") if k not in row]
        if missing:
            raise ScoringInputError(f"{path}: answer #{i + 1} lacks {', '.join(missing)}")
    check_one_settings_id(rows, path)
    return rows


def read_numbered_answers(path: str) -> list[tuple[int, dict]]:
    """(line number, answer) for every answer line, so that a scorer's errors can name the line: each must be a
    JSON object with `question_id` and a string `text`, and all made with one run's settings."""
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    numbered = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(f)
    except UnicodeDecodeError as e:
        raise ScoringInputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScoringInputError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise ScoringInputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        lacking = [k for k in ("question_id", "text") if k not in row]
        if lacking:
            raise ScoringInputError(f"{path}:{lineno}: the answer lacks {', '.join(lacking)}")
        if not isinstance(row["text"], str):
            raise ScoringInputError(f"{path}:{lineno}: 'text' must be a string")
        numbered.append((lineno, row))
    check_one_settings_id([row for _, row in numbered], path)
    return numbered


def check_known(path: str, numbered: list[tuple[int, dict]], known: set[str], what: str) -> None:
    """An answer whose question_id is not a question of the split is an error naming its line: answers of
    another split or benchmark would otherwise be dropped silently."""
    for lineno, row in numbered:
        if qid(row["question_id"]) not in known:
            raise ScoringInputError(f"{path}:{lineno}: question_id {row['question_id']!r} is not a question of {what}")


def _settings_id(row: dict) -> str | None:
    metadata = row.get("metadata")
    return metadata.get("settings_id") if isinstance(metadata, dict) else None


def check_one_settings_id(rows: Iterable[dict], path: str) -> None:
    """Refuse answers made with more than one `metadata.settings_id` (our workers' fingerprint of the checkpoint,
    pruning and generation settings): a score over them would mix two models or budgets. Files without any
    (LLaVA's own) pass."""
    counts = collections.Counter(_settings_id(row) for row in rows)
    if len(counts) > 1:
        found = ", ".join(f"{n} by {sid}" if sid else f"{n} without a settings id"
                          for sid, n in counts.most_common())
        raise ScoringInputError(f"{path}: answers made with {len(counts)} settings ({found}): more than one run wrote "
                                "this file; score each run's answers on their own (run the worker again with "
                                "--overwrite, or into another file)")


def index_by_qid(rows: Iterable[dict], key: str = "question_id") -> tuple[dict[str, dict], int]:
    """`{qid(row[key]): row}` (the last row wins, as in LLaVA's dict comprehensions) and the duplicate count."""
    index: dict[str, dict] = {}
    duplicates = 0
    for row in rows:
        k = qid(row[key])
        duplicates += k in index
        index[k] = row
    return index, duplicates


def ratio(num: float, den: float) -> float | None:
    """num / den, or None when the denominator is 0 (a metric over an empty set is undefined, not 0)."""
    return num / den if den else None


def default_result_path(answers_path: str, suffix: str = ".score.json") -> str:
    """`answers/model.jsonl` -> `answers/model.score.json`: the result JSON lives next to the answers."""
    root, ext = os.path.splitext(answers_path)
    return (root if ext in (".jsonl", ".json", ".txt", ".tsv") else answers_path) + suffix


def _atomic_write(path: str, write) -> None:
    """Create the parent directory, write to a temp file, then rename: a crash never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    finally:  # a failed write (a full disk) leaves no temp file behind
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj: Any, indent: int | None = 2) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"))


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
    _atomic_write(path, lambda f: f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def add_result_json_arg(parser: argparse.ArgumentParser, default_help: str) -> None:
    parser.add_argument("--result-json", default=None,
                        help=f"where to write the scores as JSON (default: {default_help})")


def finish(summary: str, result: dict, result_json: str | None) -> int:
    """Write the result JSON (when a path is given), print the one-line summary, return exit status 0."""
    if result_json:
        write_json(result_json, result)
        summary = f"{summary}  [{result_json}]"
    print(summary)
    return 0


def fail(message: str) -> int:
    """CLI error path: one line on stderr, exit status 2 (as argparse uses for bad usage)."""
    print(f"error: {message}", file=sys.stderr)
    return 2

