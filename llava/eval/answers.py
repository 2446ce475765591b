"""Resumable answer files and the errors sidecar.

An answers file is LLaVA's JSONL, one line per answered question, written and flushed as it goes. Running
again on an existing file resumes: answered questions are skipped and their lines kept, and a torn last line
(the run was killed mid-write) is dropped and its question redone. Each line's `metadata.settings_id`
fingerprints the settings that produced it, so a run never silently appends answers made with other
settings (another checkpoint, pruning ratio, ...) to the same file.

Questions are matched to answer lines by a key of answer-line fields (question_id + prompt by default:
TextVQA gives all questions about one image the image's id as question_id).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from llava.eval.questions import Item

logger = logging.getLogger(__name__)

Key = tuple[str, ...]


class AnswerFileError(ValueError):
    """An existing answers file cannot be resumed; the message says why and what to do."""


def settings_id(settings: dict[str, Any]) -> str:
    """A short stable fingerprint of everything that changes the answers."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


def errors_path(answers_file: str) -> str:
    """`answers/x.jsonl` -> `answers/x.errors.jsonl`."""
    return answers_file.removesuffix(".jsonl") + ".errors.jsonl"


def record_key(record: dict[str, Any], fields: Sequence[str]) -> Key:
    # JSON text keeps 5 and "5" apart, as the question file does.
    return tuple(json.dumps(record.get(field), sort_keys=True, ensure_ascii=False) for field in fields)


def _read_existing(path: str) -> list[dict[str, Any]]:
    """The complete lines of `path`; a torn last line is cut off the file (and logged)."""
    with open(path, "rb") as f:
        data = f.read()
    *lines, tail = data.split(b"\n")
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise AnswerFileError(
                f"{path}:{lineno}: not a JSON object, so the file cannot be resumed; fix or delete that line, "
                "or pass --overwrite to start over"
            )
        records.append(record)
    if tail.strip():
        try:
            records.append(json.loads(tail))
            with open(path, "ab") as f:  # complete, only its newline is missing
                f.write(b"\n")
        except ValueError:
            logger.warning("%s: dropping a truncated last line (an interrupted run); its question is redone", path)
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(tail))
    return records


class AnswerFile:
    """Appends answer lines to `path`, resuming what is already there (or starting over with `overwrite`)."""

    def __init__(self, path: str, key_fields: Sequence[str], settings: str, overwrite: bool = False):
        self.path = path
        self.key_fields = tuple(key_fields)
        self.settings = settings
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        existing = [] if overwrite or not os.path.exists(path) else _read_existing(path)
        self._check_settings(existing)
        self.done = collections.Counter(record_key(r, self.key_fields) for r in existing)
        self.num_existing = len(existing)
        # (kept, total) image tokens of the answers already there, so that a resumed run's summary covers them
        metadata = [r.get("metadata") or {} for r in existing]
        self.existing_image_tokens = [(m["image_tokens_kept"], m["image_tokens"]) for m in metadata
                                      if m.get("image_tokens") and "image_tokens_kept" in m]
        self._file = open(path, "w" if overwrite else "a", encoding="utf-8")

    def _check_settings(self, existing: list[dict[str, Any]]) -> None:
        other = collections.Counter(
            (r.get("metadata") or {}).get("settings_id") for r in existing
            if (r.get("metadata") or {}).get("settings_id") != self.settings
        )
        if other:
            found = ", ".join(f"{n} by {sid or 'an unknown run'}" for sid, n in other.items())
            raise AnswerFileError(
                f"{self.path} holds answers made with other settings ({found}; this run is {self.settings}): "
                "pass --overwrite to start over, or write to another --answers-file"
            )

    def pending(self, items: Iterable[Item]) -> list[Item]:
        """The items without an answer line yet, in order. A key that occurs k times in the questions
        needs k answer lines (identical duplicate questions are answered once each)."""
        remaining = collections.Counter(self.done)
        todo = []
        for item in items:
            key = record_key(item.record, self.key_fields)
            if remaining[key] > 0:
                remaining[key] -= 1
            else:
                todo.append(item)
        unmatched = sum(remaining.values())
        if unmatched:
            logger.warning("%s: %d existing answers match no question of this run (kept)", self.path, unmatched)
        return todo

    def write(self, line: dict[str, Any]) -> None:
        # One write call per line, flushed: a kill can only tear the last line, which the next run drops.
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


TOO_LONG = "skipped-too-long"  # how a prompt longer than the model's context is recorded


class ErrorLog:
    """The sidecar `<answers>.errors.jsonl`: the questions the latest run had to skip (unreadable images).

    Skipped questions have no answer line, so every run retries them: the sidecar is rewritten per run, and
    removed when nothing was skipped.
    """

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self.too_long = 0  # of them, prompts longer than the model's context
        self._file = None
        if os.path.exists(path):
            os.remove(path)

    def add(self, item: Item, error: str) -> None:
        self.count += 1
        self.too_long += error.startswith(TOO_LONG)
        logger.warning("skipping question %s: %s", item.record.get("question_id"), error)
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8")
        line = {**item.record, "images": [ref.describe() for ref in item.images], "error": error}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _concatenate(parts: Sequence[str], out: str) -> None:
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                dst.write(src.read())
    os.replace(tmp, out)  # readers never see a half-merged file


def merge_chunks(parts: Sequence[str], out: str) -> None:
    """Concatenate chunk answer files in chunk order into `out`, and their error sidecars into out's."""
    missing = [p for p in parts if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"cannot merge into {out}: missing chunk file(s) {', '.join(missing)}")
    _concatenate(parts, out)
    error_parts = [errors_path(p) for p in parts if os.path.exists(errors_path(p))]
    if error_parts:
        _concatenate(error_parts, errors_path(out))
    elif os.path.exists(errors_path(out)):
        os.remove(errors_path(out))
