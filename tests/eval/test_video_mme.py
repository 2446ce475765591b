"""Video-MME: the official answer extraction and accuracy (hand-computed), the worker's prompts and videos, the
sample set, and runs with a family that takes videos (Qwen2-VL) and one that does not (the LLaVA default)."""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from llava.eval.benchmarks.videomme import scorer as eval_video_mme
from llava.eval.benchmarks.videomme import worker as model_video_mme
from llava.eval.benchmarks.videomme.scorer import extract_characters_regex, score_video_mme
from llava.eval.core.questions import QuestionFileError, Row
from suite_threads import subprocess_threads
from test_eval_scripts import MODEL_RUN_TIMEOUT, run_script
from worker_helpers import read_answers

pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "playground" / "data" / "eval" / "videomme"


# -- the official extraction (Video-MME's evaluation/eval_your_results.py), outputs worked out by hand ---------

@pytest.mark.parametrize("response, letter", [
    ("B", "B"),
    ("  C.\n", "C"),
    ("The answer is (B)", "B"),
    ("The best answer is: D", "D"),
    ("", ""),
    ("   ", ""),
    ("(c) red", ""),  # lower case is no answer
    ("yes", ""),
    ("I think it shows a red circle", ""),  # no capital A-D
    # more than 10 words and no A-D: nothing, before any search
    ("the video shows a small red circle on a plain white background at first", ""),
    # a long answer with a letter: the first capital A-D anywhere, even inside a word
    ("In the video, the shapes change twice, and at the end the star is orange, so D", "D"),
    ("Because the star is orange, the answer is D", "B"),
    ("After the circle, the answer is C", "A"),
    ("The answer D. Orange.", "D"),
    ("The best option is C", "C"),
    # "Best answer:" is never deleted (the official list joins it with "Best option:" for want of a comma), so
    # the B of "Best" is the first capital A-D
    ("Best answer: A", "B"),
    ("Best option: C", "B"),
])
def test_extraction_is_the_official_rule(response, letter):
    assert extract_characters_regex(response) == letter


# -- the official accuracy: over questions with an extracted letter, by duration / domain / task type -----------

def _question(qid, duration, domain, task, answer, sub="Daily Life"):
    return {"question_id": qid, "videoID": f"v{qid[:3]}", "video_id": qid[:3], "duration": duration, "domain": domain,
            "sub_category": sub, "task_type": task, "question": "q?", "options": ["A. a", "B. b", "C. c", "D. d"],
            "answer": answer}


QUESTIONS = [
    _question("001-1", "short", "Knowledge", "Temporal Perception", "A"),
    _question("001-2", "short", "Knowledge", "Counting Problem", "B"),
    _question("002-1", "medium", "Life Record", "Temporal Perception", "C"),
    _question("002-2", "medium", "Life Record", "Counting Problem", "D"),
    _question("003-1", "long", "Life Record", "Counting Problem", "A"),
]
ANSWERS = [
    {"question_id": "001-1", "text": "A"},  # right
    {"question_id": "001-2", "text": "The answer is (C)"},  # wrong
    {"question_id": "002-1", "text": "no idea"},  # nothing extracted: left out of the official accuracy
    {"question_id": "002-2", "text": "D. d"},  # right
    # 003-1 unanswered
    {"question_id": "999-9", "text": "A"},  # no such question
]


def test_accuracy_by_the_official_rule_and_lmms_evals():
    summary, per_question = score_video_mme(QUESTIONS, ANSWERS)
    assert (summary["correct"], summary["answered"], summary["questions"]) == (2, 3, 5)
    assert summary["accuracy"] == pytest.approx(100 * 2 / 3)  # official: over the 3 with a letter
    assert summary["accuracy_all_questions"] == pytest.approx(100 * 2 / 5)  # lmms-eval: every question
    assert (summary["missing"], summary["unextracted"], summary["unmatched"]) == (1, 1, 1)
    assert summary["per_duration"] == {
        "short": {"correct": 1, "answered": 2, "questions": 2, "accuracy": 50.0},
        "medium": {"correct": 1, "answered": 1, "questions": 2, "accuracy": 100.0},
        "long": {"correct": 0, "answered": 0, "questions": 1, "accuracy": 0.0},
    }
    assert summary["per_domain"]["Life Record"] == {"correct": 1, "answered": 1, "questions": 3, "accuracy": 100.0}
    assert summary["per_task_type"]["Counting Problem"] == {"correct": 1, "answered": 2, "questions": 3,
                                                            "accuracy": 50.0}
    assert summary["per_task_type"]["Temporal Perception"]["accuracy"] == 100.0
    assert [q.get("extracted") for q in per_question] == ["A", "C", "", "D", None]


def test_cli_writes_the_scores_and_the_submission_layout(tmp_path, capsys):
    questions, answers = tmp_path / "test.json", tmp_path / "answers" / "m.jsonl"
    questions.write_text(json.dumps(QUESTIONS))
    answers.parent.mkdir()
    answers.write_text("".join(json.dumps(a) + "\n" for a in ANSWERS))
    output = tmp_path / "results" / "m_videomme.json"
    assert eval_video_mme.main(["--question-file", str(questions), "--result-file", str(answers),
                                "--output-file", str(output)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("Video-MME: accuracy 66.67% over 3 answered of 5 questions (short 50.0%, medium 100.0%, "
                           "long 0.0%); 40.00% counting every question (lmms-eval); 1 answers without a letter; "
                           "1 unanswered")
    assert json.loads((tmp_path / "answers" / "m.score.json").read_text())["accuracy"] == pytest.approx(200 / 3)
    videos = json.loads(output.read_text())
    assert [v["video_id"] for v in videos] == ["001", "002", "003"]
    assert videos[0]["duration_category"] == "short" and videos[0]["video_category"] == "Knowledge"
    assert [q["response"] for q in videos[0]["questions"]] == ["A", "The answer is (C)"]
    assert videos[2]["missing"] and videos[2]["questions"][0]["response"] == ""


def test_scorer_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "test.json"
    bad.write_text(json.dumps([{"question_id": "001-1", "answer": "A"}]))
    answers = tmp_path / "a.jsonl"
    answers.write_text("")
    assert eval_video_mme.main(["--question-file", str(bad), "--result-file", str(answers)]) == 2
    assert "test.json[0]: lacks videoID, duration, domain, sub_category, task_type" in capsys.readouterr().err


# -- the worker: lmms-eval's prompt (written out here), the video of each row -----------------------------------

def _args(folder, **overrides):
    return argparse.Namespace(**{"video_folder": str(folder), "max_frames": 32, "fps": None, "frame_rate": 1.0,
                                 "prompt": "lmms_eval", **overrides})


def test_prompts_are_lmms_evals_and_the_readmes(tmp_path):
    (tmp_path / "vid.mp4").write_bytes(b"")
    row = Row("q.json[0]", _question("001-1", "short", "Knowledge", "Temporal Perception", "A") | {"videoID": "vid"})
    (item,) = model_video_mme.videomme_items(row, _args(tmp_path))
    assert item.text == (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\nq?\nA. a\nB. b\nC. c\nD. d\n\n"
        "Answer with the option's letter from the given choices directly.")
    assert item.record == {"question_id": "001-1", "prompt": item.text}
    assert item.images == () and [v.path for v in item.videos] == [str(tmp_path / "vid.mp4")]
    assert (item.videos[0].max_frames, item.videos[0].fps) == (32, None)
    (official,) = model_video_mme.videomme_items(row, _args(tmp_path, prompt="official", max_frames=8, fps=1.0))
    assert official.text == (
        "Select the best answer to the following multiple-choice question based on the video. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\nq?\nA. a\nB. b\nC. c\nD. d\n"
        "The best answer is:")
    assert (official.videos[0].max_frames, official.videos[0].fps) == (8, 1.0)


def test_worker_input_errors(tmp_path):
    row = Row("q.json[0]", _question("001-1", "short", "Knowledge", "Temporal Perception", "A"))
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        model_video_mme.videomme_items(row, _args(tmp_path / "nowhere"))
    bad = Row("q.json[1]", {**row.data, "options": "A. a"})
    with pytest.raises(QuestionFileError, match=r"q\.json\[1\]: field 'options' must be a list"):
        model_video_mme.videomme_items(bad, _args(tmp_path))


# -- the sample set -------------------------------------------------------------------------------------------

def test_sample_set_scores_its_answers_fully_and_a_constant_letter_near_chance():
    questions = eval_video_mme.load_questions(str(SAMPLE / "videomme" / "test.json"))
    assert len(questions) == 60 and len({q["videoID"] for q in questions}) == 20
    assert {q["duration"] for q in questions} == {"short", "medium", "long"}
    for q in questions:
        assert (SAMPLE / "data" / f"{q['videoID']}.mp4").is_file()
        assert [o[:3] for o in q["options"]] == ["A. ", "B. ", "C. ", "D. "] and q["answer"] in "ABCD"
    truth = [{"question_id": q["question_id"], "text": q["answer"]} for q in questions]
    assert score_video_mme(questions, truth)[0]["accuracy"] == 100.0
    constant = score_video_mme(questions, [{**a, "text": "A"} for a in truth])[0]["accuracy"]
    assert 10 <= constant <= 40


def test_sample_videos_show_their_scenes_in_turn():
    from llava.eval.benchmarks.videomme.sample import FRAMES_PER_SEGMENT, FRAME_SIZE, SEGMENTS
    from llava.data.scenes import COLORS, IMAGE_SIZE, Scene
    from llava.video import load_video

    truth = {}
    for line in (SAMPLE.parent / "SYNTHETIC_SCENES.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["image"].startswith("videomme/"):
            truth[row["image"]] = Scene.from_dict(row["scene"])
    video_file = sorted((SAMPLE / "data").glob("*.mp4"))[0]
    video = load_video(video_file, max_frames=32)
    assert len(video.frames) == len(SEGMENTS) * FRAMES_PER_SEGMENT and video.timestamps[1] == 1.0
    scale = FRAME_SIZE / IMAGE_SIZE
    for k, frame in enumerate(video.frames):
        scene = truth[f"videomme/data/{video_file.name}#{k}"]
        for s in scene.shapes:  # H.264 at 4:2:0: close, not exact
            pixel = frame.getpixel((int(s.cx * scale), int(s.cy * scale)))
            assert max(abs(a - b) for a, b in zip(pixel, COLORS[s.color])) <= 40


# -- runs: a family that takes videos, and the LLaVA default, which does not -----------------------------------

@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    from llava.model.families.qwen_vl import QwenVLFamily

    if not QwenVLFamily.takes_video:
        pytest.skip("the Qwen2-VL family does not take videos yet")
    from llava.model.released_layouts import build_released_checkpoint

    return build_released_checkpoint("Qwen/Qwen2-VL-7B-Instruct", tmp_path_factory.mktemp("ckpt") / "qwen2-vl-tiny")


def _small_set(tmp_path, n):
    questions = json.loads((SAMPLE / "videomme" / "test.json").read_text())[:n]
    path = tmp_path / "test.json"
    path.write_text(json.dumps(questions))
    return path


def test_worker_answers_with_a_family_that_takes_videos(qwen_ckpt, tmp_path, capsys):
    questions, answers = _small_set(tmp_path, 3), tmp_path / "answers.jsonl"
    common = ["--model-path", str(qwen_ckpt), "--question-file", str(questions), "--video-folder",
              str(SAMPLE / "data"), "--temperature", "0", "--max_new_tokens", "3", "--max_num_frames", "4"]
    assert model_video_mme.main([*common, "--answers-file", str(answers), "--sparse", "--pruned_layer", "2",
                                 "--reduction_ratio", "0.778"]) == 0
    lines = read_answers(answers)
    assert [a["question_id"] for a in lines] == ["001-1", "001-2", "001-3"]
    assert all(a["prompt"].startswith("Select the best answer") for a in lines)
    assert all(0 < a["metadata"]["image_tokens_kept"] < a["metadata"]["image_tokens"] for a in lines)
    # fewer frames make fewer visual tokens: the flag reaches the model
    fewer = tmp_path / "fewer.jsonl"
    assert model_video_mme.main([*common[:-2], "--max_num_frames", "2", "--answers-file", str(fewer)]) == 0
    assert read_answers(fewer)[0]["metadata"]["image_tokens"] < lines[0]["metadata"]["image_tokens"]
    assert eval_video_mme.main(["--question-file", str(questions), "--result-file", str(answers)]) == 0
    assert "Video-MME: accuracy" in capsys.readouterr().out


def test_the_llava_default_refuses_videos_in_one_line(tmp_path, capsys):
    questions = _small_set(tmp_path, 1)
    assert model_video_mme.main(["--question-file", str(questions), "--video-folder", str(SAMPLE / "data"),
                                 "--answers-file", str(tmp_path / "a.jsonl"), "--temperature", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "llava checkpoint, whose prompts take no videos" in line


@pytest.fixture
def sample_copy(tmp_path):
    root = tmp_path / "eval"
    shutil.copytree(SAMPLE, root / "videomme", ignore=shutil.ignore_patterns("answers", "results"))
    return root


def test_script_on_the_llava_default_fails_with_one_clear_line(sample_copy):
    proc = run_script("videomme", {"PYTHON": sys.executable, "DATA_ROOT": str(sample_copy), "NAME": "default"})
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "whose prompts take no videos" in errors[0], proc.stderr


@pytest.mark.slow
def test_script_end_to_end_with_qwen2_vl(qwen_ckpt, sample_copy):
    proc = run_script("videomme", {
        "PYTHON": sys.executable, "DATA_ROOT": str(sample_copy), "CKPT": str(qwen_ckpt), "NAME": "e2e",
        "OMP_NUM_THREADS": subprocess_threads(), "EVAL_ARGS": "--max_new_tokens 2 --max_num_frames 2",
    }, timeout=MODEL_RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Video-MME: accuracy [\d.]+% over \d+ answered of 60 questions", proc.stdout), proc.stdout
    answers = read_answers(sample_copy / "videomme" / "answers" / "e2e.jsonl")
    assert len(answers) == 60
    score = json.loads((sample_copy / "videomme" / "answers" / "e2e.score.json").read_text())
    assert score["questions"] == 60
    assert (sample_copy / "videomme" / "results" / "e2e_videomme.json").is_file()


def test_the_releases_parquet_reads_as_its_json_rows(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pyarrow.Table.from_pylist(QUESTIONS), path)
    assert eval_video_mme.load_questions(str(path)) == QUESTIONS
    assert model_video_mme.read_videomme(str(path))[1] == Row(f"{path}[1]", QUESTIONS[1])
