"""One run at a time per answers file: a second run (same or other settings) is refused with who holds the file,
a killed holder frees it, merges wait for no one, and the scorers refuse a file holding two runs' answers."""

import json
import os
import shlex
import socket
import subprocess
import sys

import pytest

from llava.eval.core import common
from llava.eval.benchmarks.textvqa import scorer as eval_textvqa
from llava.eval.workers import model_vqa_loader
from llava.eval.core.answers import AnswerFile, merge_chunks
from worker_helpers import SMALL_SET, loader_args, read_answers

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("second_flags", [[], ["--max_num_trunction", "32"]], ids=["same settings", "other settings"])
def test_a_second_run_while_one_writes_is_refused_naming_the_holder(tiny_ckpt, qa_set, tmp_path, capsys, monkeypatch,
                                                                    second_flags):
    """The second run starts while the first loads its model (the answers file open, nothing written yet): before
    the lock both ran to the end, leaving every answer twice, or answers of two settings in one file."""
    answers = tmp_path / "a.jsonl"
    load_model = common.load_model
    second = {}

    def start_a_second_run_then_load(args, device):
        if not second:  # the first run's load only
            second["started"] = True
            second["status"] = model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers, *second_flags))
            second["stderr"] = capsys.readouterr().err
        return load_model(args, device)

    monkeypatch.setattr(common, "load_model", start_a_second_run_then_load)
    assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers)) == 0
    assert second["status"] == 2
    holder = f"pid {os.getpid()} on {socket.gethostname()}, started "
    assert f"{answers} is being written by another run ({holder}" in second["stderr"]
    assert shlex.join(sys.argv)[:80] in second["stderr"]  # the holder's command line
    lines = read_answers(answers)
    assert len(lines) == SMALL_SET and len({line["metadata"]["settings_id"] for line in lines}) == 1
    assert not (tmp_path / "a.jsonl.lock").exists()  # removed by the run that held it


HOLD_THE_FILE = """
import sys, time
from llava.eval.core.answers import AnswerFile
answers = AnswerFile(sys.argv[1], ("question_id",), "s1")
print("holding", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_the_lock_of_a_killed_run_is_free_again(tmp_path):
    answers = tmp_path / "a.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_FILE, str(answers)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ValueError, match=rf"being written by another run \(pid {holder.pid} on "):
            AnswerFile(str(answers), ("question_id",), "s1")
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own, the kernel drops its lock
        holder.wait()
    assert (tmp_path / "a.jsonl.lock").exists()  # left behind, and no obstacle
    AnswerFile(str(answers), ("question_id",), "s1").close()


def test_a_merge_is_refused_while_a_chunk_or_the_merged_file_is_written(tmp_path):
    parts = [tmp_path / "a.chunks" / f"2_{k}.jsonl" for k in range(2)]
    parts[0].parent.mkdir()
    for part in parts:
        part.write_text('{"question_id": 1, "text": "x", "metadata": {"settings_id": "s1"}}\n')
    out = tmp_path / "a.jsonl"
    for held in (parts[1], out):
        run = AnswerFile(str(held), ("question_id",), "s1")
        try:
            with pytest.raises(ValueError, match=f"{held} is being written by another run"):
                merge_chunks([str(p) for p in parts], str(out))
        finally:
            run.close()
    merge_chunks([str(p) for p in parts], str(out))
    assert out.read_text().count("\n") == 2


def test_a_scorer_refuses_answers_made_with_two_settings(tiny_ckpt, qa_set, tmp_path, capsys):
    answers = tmp_path / "a.jsonl"
    assert model_vqa_loader.main(loader_args(tiny_ckpt, qa_set, answers)) == 0
    annotations = ["--annotation-file", str(qa_set[0].parent / "TextVQA_0.5.1_val.json")]
    assert eval_textvqa.main([*annotations, "--result-file", str(answers)]) == 0
    capsys.readouterr()
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    lines[-1]["metadata"]["settings_id"] = "0123456789ab"  # as a second run with other settings appended it
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert eval_textvqa.main([*annotations, "--result-file", str(answers)]) == 2
    error = capsys.readouterr().err
    assert f"{answers}" in error and "settings" in error and "0123456789ab" in error
