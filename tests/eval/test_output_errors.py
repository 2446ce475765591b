"""Output that cannot be written: a read-only folder and a full disk stop a run with one line naming the file (what
was written is kept and the next run resumes); a merge stopped by a signal leaves no temp file, and the temp files
of merges that died are removed by the next run; chunk files of other settings are named for deletion."""

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llava.eval.workers import model_vqa_loader
from llava.eval.core.answers import AnswerFile, AnswerFileError
from worker_helpers import SMALL_SET, loader_args, read_answers

pytestmark = pytest.mark.usefixtures("one_thread")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _denied(path) -> OSError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))


def emulate_read_only(monkeypatch, folder):
    """What the kernel does for a folder without write permission, for root (whom chmod does not stop): no entry
    in it may be created, removed or renamed; files already there stay writable."""
    folder = os.path.realpath(folder)

    def inside(path) -> bool:
        return os.path.dirname(os.path.realpath(os.fspath(path))) == folder

    def creates(path, flags: int) -> bool:
        return bool(flags & os.O_CREAT) and inside(path) and not os.path.exists(path)

    real_open, real_os_open = builtins.open, os.open
    real_mkdir, real_remove, real_rename, real_replace = os.mkdir, os.remove, os.rename, os.replace

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(m in mode for m in "wax") and inside(file) \
                and not os.path.exists(file):
            raise _denied(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if creates(path, flags):
            raise _denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def refuse_inside(real):
        def fake(path, *args, **kwargs):
            if inside(path) or any(isinstance(a, (str, os.PathLike)) and inside(a) for a in args):
                raise _denied(path)
            return real(path, *args, **kwargs)
        return fake

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", refuse_inside(real_mkdir))
    for name, real in (("remove", real_remove), ("unlink", real_remove), ("rename", real_rename),
                       ("replace", real_replace)):
        monkeypatch.setattr(os, name, refuse_inside(real))


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "answers"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        emulate_read_only(monkeypatch, folder)
    yield folder
    folder.chmod(0o755)


def test_a_read_only_output_folder_is_one_line_naming_the_file(tiny_ckpt, qa_set, read_only_folder, capsys):
    answers = read_only_folder / "a.jsonl"
    assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers)) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"cannot write {answers}" in errors[0] and "permission denied" in errors[0], errors
    assert not answers.exists()


def test_a_full_disk_is_one_line_naming_the_file(tiny_ckpt, qa_set, tmp_path, capsys):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    answers = tmp_path / "a.jsonl"
    answers.symlink_to("/dev/full")
    assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers, "--overwrite")) == 2
    err = capsys.readouterr().err
    errors = error_lines(err)
    assert len(errors) == 1 and f"cannot write {answers}: the disk is full" in errors[0], errors
    assert "Traceback" not in err


def fill_the_disk_during_the_second_answer(monkeypatch, answers):
    """os.write into `answers`: the first write whole, half of the second, then ENOSPC (a disk that fills up)."""
    real_write = os.write
    calls = []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") != str(answers):
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data)
        if len(calls) == 2:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    return calls


def test_a_disk_full_mid_run_keeps_what_was_written_and_the_next_run_completes(tiny_ckpt, qa_set, tmp_path, capsys,
                                                                               monkeypatch):
    answers = tmp_path / "a.jsonl"
    with monkeypatch.context() as patch:
        calls = fill_the_disk_during_the_second_answer(patch, answers)
        assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers)) == 2
    assert len(calls) == 3
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"cannot write {answers}: the disk is full" in errors[0], errors
    first, torn = answers.read_bytes().split(b"\n")  # half a line: perhaps half a character too
    assert json.loads(first)["question_id"] == "img0" and torn and not torn.endswith(b"}")
    assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers)) == 0
    assert f"answered {SMALL_SET - 1} questions (1 already answered)" in capsys.readouterr().out
    questions = [json.loads(line) for line in qa_set[0].read_text().splitlines()]
    assert [(a["question_id"], a["prompt"]) for a in read_answers(answers)] == [(q["question_id"], q["text"])
                                                                                for q in questions]


MERGE = """
import sys
from llava.eval.core.answers import merge_chunks
merge_chunks(sys.argv[2:], sys.argv[1])
"""


@pytest.mark.slow
def test_a_merge_stopped_by_sigterm_leaves_no_temp_file(tmp_path):
    parts = [tmp_path / "2_0.jsonl", tmp_path / "2_1.jsonl"]
    parts[0].write_text('{"question_id": 1, "text": "x"}\n')
    os.mkfifo(parts[1])  # the merge blocks reading it, its temp file half written
    out = tmp_path / "a.jsonl"
    merge = subprocess.Popen([sys.executable, "-c", MERGE, str(out), *map(str, parts)])
    temp = tmp_path / f"a.jsonl.tmp.{merge.pid}"
    deadline = time.monotonic() + 60
    while not temp.exists() and merge.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temp.exists()
    time.sleep(0.2)  # into the blocking read
    merge.send_signal(signal.SIGTERM)
    status = merge.wait(timeout=60)
    assert not temp.exists() and not out.exists()
    assert status == 128 + signal.SIGTERM  # exits as a process stopped by SIGTERM does in a shell


def finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_run_removes_temp_files_of_dead_merges_only(tmp_path):
    """`NAME.jsonl.tmp.PID`: left by a merge that was killed (ours, or the scripts' `cat > NAME.jsonl.tmp.$$`)."""
    dead = finished_pid()
    answers = tmp_path / "a.jsonl"
    merged = tmp_path / "b.jsonl"  # the file the chunks of b.chunks/ are merged into
    stale = [tmp_path / f"a.jsonl.tmp.{dead}", tmp_path / f"b.jsonl.tmp.{dead}"]
    kept = [tmp_path / f"a.jsonl.tmp.{os.getpid()}", tmp_path / "a.jsonl.tmp.notes"]
    for path in stale + kept:
        path.write_text("half a merge")
    AnswerFile(str(answers), ("question_id",), "s1").close()
    chunk = tmp_path / "b.chunks" / "2_0.jsonl"
    chunk.parent.mkdir()
    AnswerFile(str(chunk), ("question_id",), "s1").close()
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)
    assert not merged.exists()


def test_chunk_files_of_other_settings_are_named_for_deletion(tmp_path):
    """The benchmark scripts run one worker per GPU on `NAME.chunks/N_K.jsonl`; chunks left by a run with other
    settings cannot be resumed, so the message says what to delete, not to run again."""
    chunk = tmp_path / "a.chunks" / "2_0.jsonl"
    chunk.parent.mkdir()
    chunk.write_text(json.dumps({"question_id": 1, "text": "x", "metadata": {"settings_id": "old"}}) + "\n")
    with pytest.raises(AnswerFileError) as refused:
        AnswerFile(str(chunk), ("question_id",), "new")
    message = str(refused.value)
    assert f"delete that run's chunk files ({tmp_path / 'a.chunks' / '*.jsonl'})" in message
    assert "--overwrite" in message and "again" not in message
