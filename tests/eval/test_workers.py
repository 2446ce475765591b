"""The workers end to end on the tiny random checkpoint: answers, chunking, resuming, bad input."""

import base64
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from llava.eval.core import common
from llava.eval.workers import model_vqa
from llava.eval.workers import model_vqa_loader
from llava.eval.benchmarks.mmbench import worker as model_vqa_mmbench
from llava.eval.benchmarks.scienceqa import worker as model_vqa_science
from suite_timeouts import hang_timeout
from worker_helpers import DART_FLAGS, GENERATION_FLAGS, NUM_QUESTIONS, read_answers, write_textvqa_set

# One thread everywhere (here and in the subprocesses): answers must match bit for bit across processes,
# and a busy 2-core machine makes multi-threaded CPU kernels crawl.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vqa_set(tmp_path_factory):
    return write_textvqa_set(tmp_path_factory.mktemp("textvqa"))


def loader_args(tiny_ckpt, vqa_set, answers, *extra):
    questions, images = vqa_set
    return ["--model-path", str(tiny_ckpt), "--question-file", str(questions), "--image-folder", str(images),
            "--answers-file", str(answers), *GENERATION_FLAGS, *DART_FLAGS, *extra]


@pytest.fixture(scope="module")
def reference(tiny_ckpt, vqa_set, tmp_path_factory):
    """One unchunked run: the answers every other way of running must reproduce."""
    answers = tmp_path_factory.mktemp("reference") / "answers.jsonl"
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers)) == 0
    return answers


def test_every_question_answered_once_in_order(reference, vqa_set):
    answers = read_answers(reference, keep_ids=True)
    questions = [json.loads(line) for line in vqa_set[0].read_text().splitlines()]
    assert [(a["question_id"], a["prompt"]) for a in answers] == [(q["question_id"], q["text"]) for q in questions]
    for a in answers:
        assert set(a) == {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
        assert a["model_id"] == "llava-tiny"
        assert a["metadata"]["image_tokens_kept"] == 4 + 64 and a["metadata"]["image_tokens"] == 576


def test_summary_line(tiny_ckpt, vqa_set, tmp_path, capsys):
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, tmp_path / "a.jsonl")) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"answered {NUM_QUESTIONS} questions; image tokens kept per question 68.0 of 576.0; ")
    assert "tokens/s" in summary


def test_chunks_concatenated_in_order_equal_the_unchunked_run(tiny_ckpt, vqa_set, reference, tmp_path):
    merged = []
    for k in range(3):  # 7 questions -> chunks of 3, 3, 1
        part = tmp_path / f"3_{k}.jsonl"
        assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, part, "--num-chunks", "3", "--chunk-idx", str(k))) == 0
        merged += read_answers(part)
    assert [len(read_answers(tmp_path / f"3_{k}.jsonl")) for k in range(3)] == [3, 3, 1]
    assert merged == read_answers(reference)


@pytest.mark.slow
def test_two_chunk_processes_in_parallel_equal_one_run(tiny_ckpt, vqa_set, reference, tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-m", "llava.eval.workers.model_vqa_loader",
                          *loader_args(tiny_ckpt, vqa_set, tmp_path / f"2_{k}.jsonl", "--num-chunks", "2", "--chunk-idx", str(k))],
                         env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for k in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=hang_timeout(600))
        assert proc.returncode == 0, out
    assert read_answers(tmp_path / "2_0.jsonl") + read_answers(tmp_path / "2_1.jsonl") == read_answers(reference)


def test_resume_after_a_kill_answers_each_question_once(tiny_ckpt, vqa_set, reference, tmp_path, capsys, monkeypatch):
    answers = tmp_path / "a.jsonl"
    lines = reference.read_text().splitlines(keepends=True)
    answers.write_text("".join(lines[:3]) + lines[3][:25])  # killed while writing the 4th answer
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers)) == 0
    assert f"answered {NUM_QUESTIONS - 3} questions (3 already answered)" in capsys.readouterr().out
    assert read_answers(answers, keep_ids=True)[:3] == [json.loads(line) for line in lines[:3]]  # kept as they were
    assert read_answers(answers) == read_answers(reference)
    # A complete file: nothing to do, and the model is not even loaded.
    monkeypatch.setattr("llava.eval.core.common.load_model", lambda *a: pytest.fail("loaded the model"))
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers)) == 0
    out = capsys.readouterr().out
    assert f"answered 0 questions ({NUM_QUESTIONS} already answered)" in out
    # The summary's kept tokens cover the answers found in the file, as they were recorded.
    recorded = [json.loads(line)["metadata"] for line in answers.read_text().splitlines()]
    kept = sum(m["image_tokens_kept"] for m in recorded) / len(recorded)
    assert f"image tokens kept per question {kept:.1f} of 576.0" in out


def test_resume_refuses_other_settings_and_overwrite_starts_over(tiny_ckpt, vqa_set, reference, tmp_path, capsys):
    answers = tmp_path / "a.jsonl"
    answers.write_text(reference.read_text())
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers, "--max_num_trunction", "32")) == 2
    assert "other settings" in capsys.readouterr().err
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers, "--max_num_trunction", "32", "--overwrite")) == 0
    rerun = read_answers(answers)
    assert len(rerun) == NUM_QUESTIONS and {a["metadata"]["image_tokens_kept"] for a in rerun} == {4 + 32}


def test_dataloader_workers_give_the_same_answers(tiny_ckpt, vqa_set, reference, tmp_path):
    answers = tmp_path / "a.jsonl"
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers, "--num-workers", "2")) == 0
    assert read_answers(answers) == read_answers(reference)


def test_missing_corrupt_and_oversized_images_are_skipped_and_recorded(tiny_ckpt, vqa_set, reference, tmp_path, capsys,
                                                                      write_bomb_png):
    questions, images = vqa_set
    lines = questions.read_text().splitlines()
    bad = [json.loads(lines[0]), json.loads(lines[2]), json.loads(lines[4])]
    bad[0]["image"], bad[1]["image"], bad[2]["image"] = "missing.jpg", "corrupt.jpg", "bomb.png"
    (tmp_path / "imgs").mkdir()
    for name in os.listdir(images):
        (tmp_path / "imgs" / name).write_bytes((images / name).read_bytes())
    (tmp_path / "imgs" / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    write_bomb_png(tmp_path / "imgs" / "bomb.png")  # PIL's DecompressionBombError, which is not an OSError
    (tmp_path / "q.jsonl").write_text("\n".join(
        [json.dumps(bad[0]), lines[1], json.dumps(bad[1]), lines[3], json.dumps(bad[2]), *lines[5:]]) + "\n")
    answers = tmp_path / "a.jsonl"
    args = loader_args(tiny_ckpt, (tmp_path / "q.jsonl", tmp_path / "imgs"), answers)
    assert model_vqa_loader.main(args) == 0
    assert f"skipped 3 (see {tmp_path / 'a.errors.jsonl'})" in capsys.readouterr().out
    expected = read_answers(reference)
    assert read_answers(answers) == [expected[1], expected[3]] + expected[5:]
    errors = read_answers(tmp_path / "a.errors.jsonl")
    assert [e["prompt"] for e in errors] == [b["text"] for b in bad]
    assert "image file not found" in errors[0]["error"] and "cannot read image" in errors[1]["error"]
    assert "bomb.png: too large" in errors[2]["error"]
    # Fixed images: the next run answers just those three, and the sidecar goes away.
    for name in ("missing.jpg", "corrupt.jpg", "bomb.png"):
        (tmp_path / "imgs" / name).write_bytes((images / "img0.jpg").read_bytes())
    assert model_vqa_loader.main(args) == 0
    assert "answered 3 questions" in capsys.readouterr().out
    assert not (tmp_path / "a.errors.jsonl").exists()


def test_bad_input_gives_one_clear_error(tiny_ckpt, vqa_set, tmp_path, capsys):
    questions, images = vqa_set
    broken = tmp_path / "q.jsonl"
    broken.write_text(questions.read_text().splitlines()[0] + "\n\n{'question_id': 3}\n")
    assert model_vqa_loader.main(loader_args(tiny_ckpt, (broken, images), tmp_path / "a.jsonl")) == 2
    assert f"{broken}:3: not valid JSON" in capsys.readouterr().err

    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, tmp_path / "a.jsonl", "--conv-mode", "vicuna")) == 2
    err = capsys.readouterr().err
    assert "Unknown conversation template 'vicuna'" in err and "vicuna_v1" in err

    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, tmp_path / "a.jsonl", "--model-path", str(tmp_path / "nope"))) == 2
    assert f"model path '{tmp_path / 'nope'}' does not exist" in capsys.readouterr().err

    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, tmp_path / "a.jsonl", "--image-folder", str(tmp_path / "x"))) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert not (tmp_path / "a.jsonl").read_text()


@pytest.mark.parametrize("field, value", [("image", 123), ("image", None), ("text", ["a", "b"]), ("text", None),
                                          ("question_id", [1])])
def test_a_field_of_the_wrong_type_is_named_before_the_model_loads(tiny_ckpt, vqa_set, tmp_path, capsys, monkeypatch,
                                                                    field, value):
    questions, images = vqa_set
    lines = questions.read_text().splitlines()
    line = {**json.loads(lines[1]), field: value}
    bad = tmp_path / "q.jsonl"
    bad.write_text("\n".join([lines[0], json.dumps(line), *lines[2:]]) + "\n")
    monkeypatch.setattr(common, "load_model", lambda *a: pytest.fail("the model loaded before the check"))
    assert model_vqa_loader.main(loader_args(tiny_ckpt, (bad, images), tmp_path / "a.jsonl")) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: field '{field}' must be a string" in err
    assert not (tmp_path / "a.jsonl").exists()


def test_a_question_file_that_is_not_utf8_names_its_line(tiny_ckpt, vqa_set, tmp_path, capsys):
    questions, images = vqa_set
    lines = questions.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"what is", b"qu\xe9 is")  # Latin-1 for é
    bad = tmp_path / "q.jsonl"
    bad.write_bytes(b"\n".join(lines))
    assert model_vqa_loader.main(loader_args(tiny_ckpt, (bad, images), tmp_path / "a.jsonl")) == 2
    assert f"{bad}:3: not UTF-8 text (byte 0xe9 at column" in capsys.readouterr().err


def test_rank_from_the_environment_picks_the_chunk(tiny_ckpt, vqa_set, reference, tmp_path, monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    answers = tmp_path / "a.jsonl"
    assert model_vqa_loader.main(loader_args(tiny_ckpt, vqa_set, answers)) == 0
    assert read_answers(tmp_path / "a.chunks" / "2_1.jsonl") == read_answers(reference)[4:]  # chunks of 4 and 3
    assert not answers.exists()  # without a launcher rendezvous nobody merges


@pytest.mark.slow
def test_torchrun_ranks_answer_their_chunks_and_rank0_merges(tiny_ckpt, vqa_set, reference, tmp_path):
    answers = tmp_path / "a.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "llava.eval.workers.model_vqa_loader", *loader_args(tiny_ckpt, vqa_set, answers)],
        env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=hang_timeout(900),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_answers(answers) == read_answers(reference)


def test_model_vqa_open_ended(tiny_ckpt, vqa_set, reference, tmp_path):
    answers = tmp_path / "a.jsonl"
    assert model_vqa.main(loader_args(tiny_ckpt, vqa_set, answers)) == 0
    # Same prompts, same greedy answers; only the settings differ (model_vqa has no --is_textvqa).
    strip = lambda lines: [{**a, "metadata": {**a["metadata"], "settings_id": None}} for a in lines]  # noqa: E731
    assert strip(read_answers(answers)) == strip(read_answers(reference))


def test_science_qa_with_and_without_images(tiny_ckpt, vqa_set, tmp_path):
    _, images = vqa_set
    turn = lambda q: [{"from": "human", "value": q}, {"from": "gpt", "value": "A"}]  # noqa: E731
    questions = [
        {"id": "11", "image": "img0.jpg", "conversations": turn("<image>\nQuestion: Which colour?\nOptions: (A) red (B) blue")},
        {"id": "12", "conversations": turn("Question: Which is a mammal?\nOptions: (A) cat (B) trout")},
        {"id": "13", "image": "img1.jpg", "conversations": turn("Question: Which shape?\nOptions: (A) box (B) ring")},
    ]
    (tmp_path / "sqa.json").write_text(json.dumps(questions))
    answers = tmp_path / "a.jsonl"
    assert model_vqa_science.main([
        "--model-path", str(tiny_ckpt), "--question-file", str(tmp_path / "sqa.json"), "--image-folder", str(images),
        "--answers-file", str(answers), "--single-pred-prompt", *GENERATION_FLAGS, *DART_FLAGS]) == 0
    lines = read_answers(answers)
    suffix = "\n" + model_vqa_science.SINGLE_PRED_PROMPT
    assert [a["question_id"] for a in lines] == ["11", "12", "13"]
    assert lines[0]["prompt"] == "<image>\nQuestion: Which colour?\nOptions: (A) red (B) blue" + suffix
    assert lines[1]["prompt"] == "Question: Which is a mammal?\nOptions: (A) cat (B) trout" + suffix
    assert [a["metadata"]["image_tokens"] for a in lines] == [576, 0, 576]


def png_base64(color):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_mmbench_rounds_resume_and_bad_images(tiny_ckpt, tmp_path, capsys):
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"]
    rows = [
        [0, "Which colour?", "nan", "red", "green", "blue", "", "A", "color", png_base64((200, 0, 0))],
        [1, "Which shape?", "A plain picture.", "box", "ring", "", "", "B", "shape", png_base64((0, 0, 200))],
        [2, "Broken image?", "", "yes", "no", "", "", "A", "misc", "bm90IGFuIGltYWdl"],
    ]
    tsv = tmp_path / "mmbench_dev.tsv"
    tsv.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    answers = tmp_path / "a.jsonl"
    args = ["--model-path", str(tiny_ckpt), "--question-file", str(tsv), "--answers-file", str(answers),
            "--all-rounds", "--single-pred-prompt", *GENERATION_FLAGS, *DART_FLAGS]
    assert model_vqa_mmbench.main(args) == 0
    lines = read_answers(answers)
    assert [(a["question_id"], a["round_id"]) for a in lines] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert lines[1]["options"] == ["green", "blue", "red"] and lines[1]["option_char"] == ["B", "C", "A"]
    assert lines[3]["prompt"] == "A plain picture.\nWhich shape?\nA. box\nB. ring"
    errors = read_answers(tmp_path / "a.errors.jsonl")
    assert [(e["question_id"], e["round_id"]) for e in errors] == [(2, 0), (2, 1)]
    assert "base64 image" in errors[0]["error"]
    # Rounds share a question_id: resuming tells them apart by round_id.
    answers.write_text("".join(answers.read_text().splitlines(keepends=True)[:2]))
    capsys.readouterr()
    assert model_vqa_mmbench.main(args) == 0
    assert "answered 3 questions (2 already answered)" in capsys.readouterr().out
    assert read_answers(answers) == lines


def test_a_prompt_longer_than_the_context_is_skipped_as_too_long_not_cut(tiny_ckpt, vqa_set, reference, tmp_path,
                                                                          capsys):
    """With tokenizer_model_max_length 576 + 300 the usual questions fit and a 300-word one does not: it is
    recorded as skipped-too-long (LLaVA would have cut its question off), the others are answered as before."""
    import shutil

    ckpt = tmp_path / "short-context"
    shutil.copytree(tiny_ckpt, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "tokenizer_model_max_length": 576 + 300}))
    questions, images = vqa_set
    lines = questions.read_text().splitlines()
    long = json.loads(lines[1])
    long["text"] = "what colour " * 150 + long["text"]
    (tmp_path / "q.jsonl").write_text("\n".join([lines[0], json.dumps(long), *lines[2:]]) + "\n")
    answers = tmp_path / "a.jsonl"
    args = loader_args(ckpt, (tmp_path / "q.jsonl", images), answers)
    assert model_vqa_loader.main(args) == 0
    assert f"skipped 1 (1 too long for the context; see {tmp_path / 'a.errors.jsonl'})" in capsys.readouterr().out
    expected = [(a["question_id"], a["text"]) for a in read_answers(reference, keep_ids=True)]
    assert [(a["question_id"], a["text"]) for a in read_answers(answers, keep_ids=True)] == [expected[0], *expected[2:]]
    (error,) = read_answers(tmp_path / "a.errors.jsonl")
    assert error["error"].startswith("skipped-too-long: the prompt is ")
    assert "(576 of them image tokens), more than the model's tokenizer_model_max_length of 876" in error["error"]
