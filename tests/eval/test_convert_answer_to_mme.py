"""MME converter: ground truth from the official layout, LLaVA's prompt mapping, then the scorer end to end."""

import pytest

from llava.eval.benchmarks.mme import scorer as calculate_mme
from llava.eval.benchmarks.mme.convert import convert, load_ground_truth, main
from llava.eval.core.scoring_io import write_jsonl

YN = "Please answer yes or no."


@pytest.fixture
def mme_dir(tmp_path):
    """MME_Benchmark_release_version with one flat category and one images/ + questions_answers_YN/ category."""
    gt = tmp_path / "MME_Benchmark_release_version"
    (gt / "existence").mkdir(parents=True)
    (gt / "existence" / "0001.png").write_bytes(b"")
    (gt / "existence" / "0001.txt").write_text(f"Is there a dog in this image? {YN}\tYes\n"
                                               f"Is there a cat in this image? {YN}\tNo\n")
    (gt / "existence" / "0002.txt").write_text(f"Is there a car in this image? {YN}\tYes\n"
                                               f"Is there a bus in this image? {YN}\tNo\n")
    (gt / "artwork" / "images").mkdir(parents=True)
    (gt / "artwork" / "questions_answers_YN").mkdir()
    # the official files have a few questions with two spaces before the yes/no instruction
    (gt / "artwork" / "questions_answers_YN" / "10002.txt").write_text(
        f"Is this artwork by Monet?  {YN}\tYes\nIs this artwork by Dali? {YN}\tNo\n")
    return tmp_path


def answer(question_id, prompt, text):
    return {"question_id": question_id, "prompt": prompt, "text": text, "answer_id": "x", "model_id": "m",
            "metadata": {}}


ANSWERS = [
    answer("existence/0001.png", f"Is there a dog in this image? {YN}", "Yes"),
    answer("existence/0001.png", f"Is there a cat in this image? {YN}", "No"),
    answer("existence/0002.png", "Is there a car in this image?\nAnswer the question using a single word or phrase.",
           "Yes"),
    answer("existence/0002.png", f"Is there a bus in this image? {YN}", "Yes,\tthere\nis one"),
    answer("artwork/10002.jpg", "Is this artwork by Monet?", "Yes"),     # -> the two-space spelling
    answer("artwork/10002.jpg", f"Is this artwork by Dali? {YN}", "No"),
]


def test_ground_truth_layouts(mme_dir):
    gt = load_ground_truth(str(mme_dir / "MME_Benchmark_release_version"))
    assert gt[("existence", "0001.txt", f"Is there a cat in this image? {YN}")] == "No"
    assert gt[("artwork", "10002.txt", f"Is this artwork by Monet?  {YN}")] == "Yes"


def test_convert_maps_prompts_back_to_mme_questions(mme_dir):
    rows = convert(ANSWERS, load_ground_truth(str(mme_dir / "MME_Benchmark_release_version")))
    assert rows["existence"][2] == ("0002.txt", f"Is there a car in this image? {YN}", "Yes", "Yes")
    assert rows["existence"][3][3] == "Yes, there is one"   # tab and newline would break the txt line
    assert rows["artwork"][0] == ("10002.txt", f"Is this artwork by Monet?  {YN}", "Yes", "Yes")


def test_unknown_question_is_an_error(mme_dir):
    gt = load_ground_truth(str(mme_dir / "MME_Benchmark_release_version"))
    with pytest.raises(ValueError, match="1 answers have no MME ground truth"):
        convert([answer("existence/0001.png", "Is there a horse?", "No")], gt)


def test_convert_then_calculate(mme_dir, capsys):
    write_jsonl(str(mme_dir / "answers" / "exp.jsonl"), ANSWERS)
    assert main(["--data-dir", str(mme_dir), "--experiment", "exp"]) == 0
    out_dir = mme_dir / "eval_tool" / "answers" / "exp"
    lines = (out_dir / "existence.txt").read_text().splitlines()
    assert lines[0] == f"0001.txt\tIs there a dog in this image? {YN}\tYes\tYes"
    assert calculate_mme.main(["--results_dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    # existence: 3 of 4 right (acc .75), image 0001 both right, 0002 not (acc+ .5) -> 125;
    # artwork: both right -> 200. Perception 325.
    assert "perception 325.00 / 400 (2 of 10 subtasks: " in out
