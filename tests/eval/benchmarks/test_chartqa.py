"""ChartQA: pix2struct's relaxed correctness on hand-computed cases, the per-set and mean scores, clear errors,
the record's plan (shell-quoted paths with spaces), the held-out chart sample (answers read back from the
pixels) and the worker end to end on the embedded default."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from chart_pixels import chart_style, find_bars
from llava.data.charts import BASELINE, Bar, Chart, chart_split, render_chart, sample_chart
from llava.data.scenes import WORDS
from llava.eval.benchmarks import Answer, Context, Run, get, plan_lines
from llava.eval.benchmarks.chartqa import scorer, worker
from llava.eval.benchmarks.chartqa.sample import write_chartqa
from llava.eval.core.common import build_parser
from worker_helpers import GENERATION_FLAGS, read_answers

TEST = "ChartQA Dataset/test"
PROMPT = "\nAnswer the question with a single word."  # lmms-eval's chartqa.yaml, default post_prompt


# -- the rule ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction, gold, right", [
    ("60", "60", True),
    ("105", "100", True), ("95", "100", True),          # 5% exactly, above and below: included
    ("105.5", "100", False), ("94.5", "100", False),     # just past 5% on either side
    ("210", "200", True), ("211", "200", False),
    ("-21", "-20", True), ("-19", "-20", True),          # relative to |gold|
    ("-22", "-20", False), ("20", "-20", False),
    ("62%", "62", False),                                # "62%" is 0.62
    ("0.62", "62%", True), ("62", "62%", False),
    ("52%", "50%", True), ("53%", "50%", False),
    ("0", "0", True), ("0.0", "0", False),               # gold 0 is falsy: exact string match only
    ("0.01", "0", False), ("0%", "0%", True), ("0", "0%", False),
    ("Yes", "yes", True), ("RED", "red", True),          # strings: equal ignoring case
    ("Red.", "red", False), ("blue", "red", False),      # ... and nothing else normalised
    ("60.", "60", True), ("60.0", "60", True),           # float() reads these
    (" 60 ", "60", True), (" red", "red", False),        # float() ignores outer spaces, string equality does not
    ("1,000", "1000", False),                            # no thousands separators
    ("sixty", "60", False), ("3", "three", False),
])
def test_relaxed_correctness(prediction, gold, right):
    assert scorer.relaxed_correctness(prediction, gold) is right


def test_pix2struct_metrics_test_cases():
    """pix2struct/metrics_test.py: relaxed_accuracy 62.5 on these eight (prediction, target) pairs."""
    pairs = [("abc", "abc"), ("abc", "Abc"), ("Abc", "abc"), ("100%", "96%"), ("100%", "94%"), ("100%", "0.96"),
             ("100%", "0.94"), ("Don't", "Won't")]
    assert 100 * sum(scorer.relaxed_correctness(p, t) for p, t in pairs) / len(pairs) == 62.5


# -- the score -----------------------------------------------------------------------------------------

HUMAN = [{"imgname": "1.png", "query": "q", "label": "Yes"}, {"imgname": "1.png", "query": "q", "label": "12"}]
AUGMENTED = [{"imgname": "two_col_1.png", "query": "q", "label": label} for label in ("40", "blue", "0", "7.5")]
ANSWERS = [
    {"question_id": "human/0", "text": " yes\n", "set": "human"},   # right: stripped, case ignored
    {"question_id": "human/1", "text": "13"},                      # wrong: 8.3% off
    {"question_id": "augmented/0", "text": "41"},                  # right: 2.5% off
    {"question_id": "augmented/1", "text": "Blue"},                # right
    {"question_id": "augmented/2", "text": "0"},                   # right: exact
    {"question_id": "augmented/3", "text": "7.2"},                 # right: 4% off
]


def write_release(folder: Path, human=HUMAN, augmented=AUGMENTED) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_human.json").write_text(json.dumps(human))
    (folder / "test_augmented.json").write_text(json.dumps(augmented, indent="\t"))
    return folder


def write_lines(path: Path, rows, raw: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + raw)
    return path


def test_scores_by_hand(tmp_path):
    test = write_release(tmp_path / "chartqa" / TEST)
    answers = write_lines(tmp_path / "a.jsonl", ANSWERS)
    result = scorer.score_chartqa(scorer.load_annotations(str(test)), scorer.read_answer_lines(str(answers)))
    assert result["human"] == {"correct": 1, "questions": 2, "accuracy": 50.0}
    assert result["augmented"] == {"correct": 4, "questions": 4, "accuracy": 100.0}
    assert result["overall"] == result["score"] == 75.0                       # the mean of the two sets
    assert result["pooled"] == pytest.approx(100 * 5 / 6)                     # lmms-eval's relaxed_overall
    one = scorer.score_chartqa(scorer.load_annotations(str(test / "test_human.json")),
                               {k: v for k, v in scorer.read_answer_lines(str(answers)).items() if k.startswith("h")})
    assert one["overall"] == 50.0 and "augmented" not in one


def test_cli_writes_the_score_the_record_reads(tmp_path, capsys):
    root = tmp_path / "eval data"
    test = write_release(root / "chartqa" / TEST)
    write_lines(root / "chartqa" / "answers" / "m.jsonl", ANSWERS)
    assert scorer.main(["--annotations", str(test), "--result-file", str(root / "chartqa/answers/m.jsonl")]) == 0
    assert capsys.readouterr().out.startswith(
        "ChartQA: relaxed accuracy 75.00 (mean of the sets): human 50.00 (1/2), augmented 100.00 (4/4)")
    assert get("chartqa").score(root, "m") == 75.0


@pytest.mark.parametrize("rows, raw, allow_missing, message", [
    (ANSWERS + [{"question_id": "human/2", "text": "x"}], "", False,
     r"a\.jsonl:7: question_id 'human/2' is not a question of the annotations \(human/0\.\.1, augmented/0\.\.3\)"),
    (ANSWERS + [{"question_id": 3, "text": "x"}], "", False, r"a\.jsonl:7: question_id 3 is not a question"),
    (ANSWERS[:5], "", False, r"a\.jsonl: no answer for 1 of 6 questions \(first: augmented/3\).*--allow-missing"),
    (ANSWERS, "{not json\n", False, r"a\.jsonl:7: not valid JSON"),
    (ANSWERS, '{"question_id": "human/0"}\n', False, r"a\.jsonl:7: the answer lacks text"),
    (ANSWERS + [ANSWERS[1]], "", False, r"a\.jsonl:7: question 'human/1' was answered already on line 2"),
    ([{**ANSWERS[0], "set": "augmented"}] + ANSWERS[1:], "", False, r"a\.jsonl:1: question 'human/0' is marked as set"),
])
def test_bad_answers_are_errors_naming_the_line(tmp_path, capsys, rows, raw, allow_missing, message):
    test = write_release(tmp_path / TEST)
    answers = write_lines(tmp_path / "a.jsonl", rows, raw)
    assert scorer.main(["--annotations", str(test), "--result-file", str(answers)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "a.score.json").exists()


def test_allow_missing_counts_them_wrong(tmp_path):
    test = write_release(tmp_path / TEST)
    answers = write_lines(tmp_path / "a.jsonl", ANSWERS[:5])
    assert scorer.main(["--annotations", str(test), "--result-file", str(answers), "--allow-missing"]) == 0
    saved = json.loads((tmp_path / "a.score.json").read_text())
    assert saved["augmented"]["correct"] == 3 and saved["missing"] == 1 and saved["overall"] == (50 + 75) / 2


@pytest.mark.parametrize("make, message", [
    (lambda d: write_release(d, augmented=[{"imgname": "a.png", "query": "q", "label": ["40"]}]),
     r"test_augmented\.json\[0\]: expected an object with a string 'label'"),
    (lambda d: (d.mkdir(parents=True), (d / "test_human.json").write_text("[]")),
     r"not a ChartQA split folder, it lacks .*test_augmented\.json"),
])
def test_bad_annotations_are_errors_naming_the_file(tmp_path, capsys, make, message):
    make(tmp_path / TEST)
    write_lines(tmp_path / "a.jsonl", ANSWERS)
    assert scorer.main(["--annotations", str(tmp_path / TEST), "--result-file", str(tmp_path / "a.jsonl")]) == 2
    assert re.search(message, capsys.readouterr().err)


# -- the worker's questions and the plan ----------------------------------------------------------------


def test_worker_reads_both_sets_with_lmms_evals_prompt(tmp_path):
    test = write_release(tmp_path / TEST)
    rows = worker.read_chartqa(str(test))
    items = [item for row in rows for item in worker.chartqa_items(row, argparse.Namespace(image_folder="I"))]
    assert [i.record["question_id"] for i in items] == ["human/0", "human/1"] + [f"augmented/{k}" for k in range(4)]
    assert [i.record["set"] for i in items] == ["human"] * 2 + ["augmented"] * 4
    assert items[0].text == items[0].record["prompt"] == "q" + PROMPT
    assert [i.images[0].path for i in items[1:3]] == ["I/1.png", "I/two_col_1.png"]
    assert rows[2].location.endswith("test_augmented.json[0]")
    only = worker.read_chartqa(str(test / "test_augmented.json"))
    assert [r.data["question_id"] for r in only] == [f"augmented/{k}" for k in range(4)]
    (tmp_path / "questions.json").write_text("[]")
    with pytest.raises(ValueError, match="expected ChartQA's split folder"):
        worker.read_chartqa(str(tmp_path / "questions.json"))
    with pytest.raises(ValueError, match="not a ChartQA split folder, it lacks"):
        worker.read_chartqa(str(tmp_path))


def test_plan_runs_the_worker_then_the_scorer_on_quoted_paths():
    bench = get("chartqa")
    assert bench.workers == ["llava.eval.benchmarks.chartqa.worker"] and bench.lmms_task == "chartqa"
    context = Context("/data/eval root", "run 1")
    answer, run = bench.plan(context)
    test = "/data/eval root/chartqa/ChartQA Dataset/test"
    assert isinstance(answer, Answer) and isinstance(run, Run)
    # What scripts/eval_benchmark.sh reads back: each line's words, spaces intact.
    assert [shlex.split(line) for line in plan_lines(bench, context)] == [
        ["answer", "llava.eval.benchmarks.chartqa.worker", "/data/eval root/chartqa/answers/run 1.jsonl",
         "--question-file", test, "--image-folder", f"{test}/png"],
        ["run", "llava.eval.benchmarks.chartqa.scorer", "--annotations", test,
         "--result-file", "/data/eval root/chartqa/answers/run 1.jsonl"]]
    parsed = build_parser(worker.TASK).parse_args([*answer.args, "--answers-file", answer.answers])
    assert parsed.question_file == test and parsed.max_new_tokens == 16   # lmms-eval's max_new_tokens
    assert scorer.parse_args(list(run.args)).annotations == test
    assert all(f"{TEST}/" in f for f in bench.files)


# -- the charts and the sample ----------------------------------------------------------------------------

def read_chart(image: Image.Image) -> Chart:
    """The chart an image shows, read back from its pixels: bars are runs of one scene colour along the row above
    the baseline, a value is a bar's height over UNIT, the style is whether the y axis is drawn; each label is
    the word whose rendering matches the pixels under its bar."""
    style = chart_style(image)
    bars = [Bar(color, "?", height) for color, height in find_bars(image)]
    chart = Chart(style, tuple(bars))
    labels = []
    for i in range(len(bars)):
        left, right = (round(v) for v in chart.slot(i))
        region = (left, BASELINE + 2, right, image.height)
        matches = [w for w in WORDS if render_chart(replace(chart, bars=tuple(
            replace(b, label=w) if j == i else b for j, b in enumerate(bars)))).crop(region).tobytes()
            == image.crop(region).tobytes()]
        assert len(matches) == 1, (i, matches)
        labels += matches
    return replace(chart, bars=tuple(replace(b, label=w) for b, w in zip(bars, labels)))


def expected_answer(query: str, chart: Chart) -> str:
    """The answer to a sample question, from the chart read off the pixels."""
    by_color = {b.color: b for b in chart.bars}
    top, bottom = max(chart.bars, key=lambda b: b.value), min(chart.bars, key=lambda b: b.value)
    if query.startswith("How many bars"):
        return str(len(chart.bars))
    if re.search(r"highest value in the chart|value of the largest bar", query):
        return str(top.value)
    if m := re.fullmatch(r"Is the (?:value of the )?(\w+) bar (?:taller|more) than the (\w+) bar\?", query):
        return "Yes" if by_color[m[1]].value > by_color[m[2]].value else "No"
    if m := re.fullmatch(r"What(?:'s| is) the value of the (\w+) bar\?", query):
        return str(by_color[m[1]].value)
    if m := re.fullmatch(r"What is the value of ([A-Z]+)(?: in the graph)?\?", query):
        return str(next(b.value for b in chart.bars if b.label == m[1]))
    if re.search(r"tallest bar|highest bar", query):
        return top.color
    if re.search(r"shortest bar|lowest bar", query):
        return bottom.color
    if re.search(r"label has the highest|category has the largest", query):
        return top.label.lower()
    raise AssertionError(f"unexpected question {query!r}")


HUMAN_ONLY = ("shown in the chart", "What's", "in the graph", "highest bar", "lowest bar", "category", "more than")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return root, write_chartqa(root, seed=11, n=21)


def test_sample_is_the_release_layout_with_answers_the_charts_show(sample):
    root, summary = sample
    test = root / "chartqa" / TEST
    human, augmented = (json.loads((test / f"test_{s}.json").read_text()) for s in ("human", "augmented"))
    assert (len(human), len(augmented)) == (11, 10) and summary.n_questions == 21
    assert (test / "test_human.json").read_text().startswith('[{"imgname": ')      # one line, as released
    assert (test / "test_augmented.json").read_text().startswith('[\n\t{\n\t\t"imgname": ')  # tab-indented
    images = {e["imgname"] for e in human} | {e["imgname"] for e in augmented}
    assert {p.name for p in (test / "png").iterdir()} == images
    assert not {e["imgname"] for e in human} & {e["imgname"] for e in augmented}
    for question_set, entries in (("human", human), ("augmented", augmented)):
        for entry in entries:
            assert set(entry) == {"imgname", "query", "label"} and isinstance(entry["label"], str)
            assert any(p in entry["query"] for p in HUMAN_ONLY) == (question_set == "human"), entry["query"]
    charts = {}
    for name in images:
        image = Image.open(test / "png" / name)
        assert image.size == (336, 336) and image.mode == "RGB"
        charts[name] = read_chart(image)
        assert render_chart(charts[name]).tobytes() == image.convert("RGB").tobytes()  # read back whole
        assert chart_split(charts[name]) == "eval"                                      # held out
        assert summary.scenes[f"chartqa/{TEST}/png/{name}"] == charts[name]
    assert summary.n_images == len(images) == len(summary.scenes)
    for entry in human + augmented:
        assert entry["label"] == expected_answer(entry["query"], charts[entry["imgname"]]), entry


def test_sample_is_deterministic(sample, tmp_path):
    root, _ = sample

    def files(path):
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    write_chartqa(tmp_path / "same", seed=11, n=21)
    write_chartqa(tmp_path / "other", seed=12, n=21)
    assert files(tmp_path / "same") == files(root)
    assert files(tmp_path / "other") != files(root)


def test_charts_fall_in_one_split():
    import random

    rng = random.Random(0)
    train = [sample_chart(rng, split="train") for _ in range(200)]
    held_out = [sample_chart(rng, split="eval") for _ in range(50)]
    assert {chart_split(c) for c in train} == {"train"} and {chart_split(c) for c in held_out} == {"eval"}
    assert not {c.signature() for c in train} & {c.signature() for c in held_out}
    assert 0.05 < sum(chart_split(sample_chart(rng, split=None)) == "eval" for _ in range(800)) / 800 < 0.2
    chart = held_out[0]
    assert Chart.from_dict(json.loads(json.dumps(chart.to_dict()))) == chart


# -- end to end ----------------------------------------------------------------------------------------


def test_worker_and_scorer_run_the_plan_on_the_sample(tmp_path, capsys):
    from llava.constants import DEFAULT_MODEL_PATH

    root = tmp_path / "eval data"
    write_chartqa(root, seed=5, n=4)
    bench = get("chartqa")
    answer, run = bench.plan(Context(str(root), "tiny"))
    assert worker.main([*answer.args, "--answers-file", answer.answers, "--model-path", DEFAULT_MODEL_PATH,
                        "--device", "cpu", *GENERATION_FLAGS]) == 0
    lines = read_answers(Path(answer.answers))
    assert [(line["question_id"], line["set"]) for line in lines] == [
        ("human/0", "human"), ("human/1", "human"), ("augmented/0", "augmented"), ("augmented/1", "augmented")]
    assert all(line["prompt"].endswith(PROMPT) for line in lines)
    assert scorer.main(list(run.args)) == 0
    saved = json.loads((root / "chartqa" / "answers" / "tiny.score.json").read_text())
    assert saved["questions"] == 4 and saved["missing"] == 0
    mean = (saved["human"]["accuracy"] + saved["augmented"]["accuracy"]) / 2
    assert bench.score(root, "tiny") == saved["overall"] == mean
