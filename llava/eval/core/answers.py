"""Resumable answer files and the errors sidecar.

An answers file is LLaVA's JSONL, one line per answered question, written and flushed as it goes. Running
again on an existing file resumes: answered questions are skipped and their lines kept, and a torn last line
(the run was killed mid-write) is dropped and its question redone. Each line's `metadata.settings_id`
fingerprints the settings that produced it, so a run never silently appends answers made with other
settings (another checkpoint, pruning ratio, ...) to the same file.

Questions are matched to answer lines by a key of answer-line fields (question_id + prompt by default:
TextVQA gives all questions about one image the image's id as question_id).

One run at a time writes a file (`llava.eval.core.run_lock`). A file that cannot be written (a read-only folder, a
full disk) stops the run with an `OutputError` naming it; what was written stays, and the next run resumes.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from llava.eval.core.chunking import merged_answers_path
from llava.eval.core.questions import Item
from llava.eval.core.run_lock import RunLock, all_locked

logger = logging.getLogger(__name__)

Key = tuple[str, ...]


class AnswerFileError(ValueError):
    """An existing answers file cannot be resumed; the message says why and what to do."""


class OutputError(OSError):
    """An output file cannot be written (a read-only folder, a full disk); the message names it and what to do."""


_WHY = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied (a read-only folder?)",
    errno.EPERM: "permission denied (a read-only folder?)",
    errno.EROFS: "the file system is read-only",
}


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn an OSError of writing `path` into an `OutputError` naming it, in one line."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        why = _WHY.get(exc.errno, exc.strerror or str(exc))
        which = f" ({exc.filename})" if exc.filename and exc.filename != path else ""
        raise OutputError(f"cannot write {path}{which}: {why}; the answers written so far are kept: once that is "
                          "fixed, run the same command again to resume") from None


def _write_all(fd: int, data: bytes) -> None:
    """Unbuffered: a failed write leaves nothing behind in a buffer that closing the file would retry."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _LineFile:
    """JSON lines appended to `path`, each written whole by `os.write` as it comes (a kill tears the last one at
    most); `fresh` empties the file first."""

    def __init__(self, path: str, fresh: bool):
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if fresh else os.O_APPEND)
        with writing(path):
            self._fd = os.open(path, flags, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        with writing(self.path):
            _write_all(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with writing(self.path):  # a network file system may report a failed write only here
                os.close(fd)


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


def _temp_pid(temp_file: str, target: str) -> int | None:
    suffix = temp_file[len(target) + len(".tmp."):]
    return int(suffix) if suffix.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temp_files(target: str) -> None:
    """Remove the `TARGET.tmp.PID` files (merges into `target`, ours and the scripts') of processes that are gone:
    a merge killed before its rename leaves one. Live ones may be a merge in progress on this host."""
    for temp_file in glob.glob(glob.escape(target) + ".tmp.*"):
        pid = _temp_pid(temp_file, target)
        if pid is not None and not _pid_alive(pid):
            with writing(temp_file), contextlib.suppress(FileNotFoundError):
                os.remove(temp_file)
            logger.info("removed %s, left by an interrupted merge", temp_file)


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
            with writing(path), open(path, "ab") as f:  # complete, only its newline is missing
                f.write(b"\n")
        except ValueError:
            logger.warning("%s: dropping a truncated last line (an interrupted run); its question is redone", path)
            with writing(path):
                os.truncate(path, len(data) - len(tail))
    return records


class AnswerFile:
    """Appends answer lines to `path`, resuming what is already there (or starting over with `overwrite`).

    Holds the file's run lock from construction to `close` (also a context manager)."""

    def __init__(self, path: str, key_fields: Sequence[str], settings: str, overwrite: bool = False):
        self.path = path
        self.key_fields = tuple(key_fields)
        self.settings = settings
        with writing(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._lock = RunLock(path)
        self._file = None
        try:
            self._open(overwrite)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, overwrite: bool) -> None:
        remove_stale_temp_files(self.path)
        merged = merged_answers_path(self.path)
        if merged is not None:  # a chunk: the scripts merge the chunks into `merged` next
            remove_stale_temp_files(merged)
        existing = [] if overwrite or not os.path.exists(self.path) else _read_existing(self.path)
        self._check_settings(existing)
        self.done = collections.Counter(record_key(r, self.key_fields) for r in existing)
        self.num_existing = len(existing)
        # (kept, total) image tokens of the answers already there, so that a resumed run's summary covers them
        metadata = [r.get("metadata") or {} for r in existing]
        self.existing_image_tokens = [(m["image_tokens_kept"], m["image_tokens"]) for m in metadata
                                      if m.get("image_tokens") and "image_tokens_kept" in m]
        self._file = _LineFile(self.path, fresh=overwrite)

    def _check_settings(self, existing: list[dict[str, Any]]) -> None:
        other = collections.Counter(
            (r.get("metadata") or {}).get("settings_id") for r in existing
            if (r.get("metadata") or {}).get("settings_id") != self.settings
        )
        if other:
            found = ", ".join(f"{n} by {sid or 'an unknown run'}" for sid, n in other.items())
            raise AnswerFileError(
                f"{self.path} holds answers made with other settings ({found}; this run is {self.settings}), "
                f"which cannot be resumed: {self._start_over_advice()}"
            )

    def _start_over_advice(self) -> str:
        merged = merged_answers_path(self.path)
        if merged is None:
            return "pass --overwrite to start over, or write to another --answers-file"
        chunks = os.path.dirname(self.path)
        return (f"it is a chunk of an earlier run; delete that run's chunk files ({os.path.join(chunks, '*.jsonl')}) "
                "or pass --overwrite (EVAL_ARGS=--overwrite for the benchmark scripts) to start over")

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
        # One write per line, unbuffered: a kill or a full disk can only tear the last line, which the next run drops.
        self._file.write(line)

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        finally:
            self._lock.release()

    def __enter__(self) -> AnswerFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


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
            with writing(path):
                os.remove(path)

    def add(self, item: Item, error: str) -> None:
        self.count += 1
        self.too_long += error.startswith(TOO_LONG)
        logger.warning("skipping question %s: %s", item.record.get("question_id"), error)
        if self._file is None:
            self._file = _LineFile(self.path, fresh=True)
        self._file.write({**item.record, "images": [ref.describe() for ref in item.images], "error": error})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> ErrorLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (removing temp files) and exit as the signal asks."""


@contextlib.contextmanager
def _stop_signals_unwind() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP (where they would kill the process) raise `_Stopped` instead, so that
    `finally` clauses run; on leaving, the process exits with the signal's status as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []

    def stop(signum, frame):
        caught.append(signum)
        raise _Stopped()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(sig, stop)
    try:
        yield
    except _Stopped:
        raise SystemExit(128 + caught[0]) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _concatenate(parts: Sequence[str], out: str) -> None:
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with writing(out), _stop_signals_unwind():
            with open(tmp, "wb") as dst:
                for part in parts:
                    with open(part, "rb") as src:
                        dst.write(src.read())
            os.replace(tmp, out)  # readers never see a half-merged file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def merge_chunks(parts: Sequence[str], out: str) -> None:
    """Concatenate chunk answer files in chunk order into `out`, and their error sidecars into out's; refused while
    another run writes `out` or a chunk."""
    missing = [p for p in parts if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"cannot merge into {out}: missing chunk file(s) {', '.join(missing)}")
    with writing(out), all_locked([out, *parts]):
        remove_stale_temp_files(out)
        _concatenate(parts, out)
        error_parts = [errors_path(p) for p in parts if os.path.exists(errors_path(p))]
        if error_parts:
            _concatenate(error_parts, errors_path(out))
        elif os.path.exists(errors_path(out)):
            os.remove(errors_path(out))
