"""LLaVA-Bench's GPT review and its summary: LLaVA's prompt layout, score parsing and relative score,
resuming, and the script calling both when OPENAI_API_KEY is set (the judge replaced by a function)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from llava.eval.benchmarks.llavabench import scorer as review
from llava.eval.benchmarks.llavabench import summarize as summary
from llava.eval.core.scoring_io import ScoringInputError
from recording_python import fake_python
from test_eval_scripts import run_script

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "playground" / "data" / "eval" / "llava-bench-in-the-wild"
RULES = REPO / "llava" / "eval" / "benchmarks" / "llavabench" / "rule.json"


def test_review_prompt_is_laid_out_as_llavas():
    rule = {"role": "Assistant", "prompt": "Rate them."}
    assert review.review_prompt("What is red?", "a red star\na blue sky", "the star", "a star", rule) == (
        "[Context]\na red star\na blue sky\n\n"
        "[Question]\nWhat is red?\n\n"
        "[Assistant 1]\nthe star\n\n[End of Assistant 1]\n\n"
        "[Assistant 2]\na star\n\n[End of Assistant 2]\n\n"
        "[System]\nRate them.\n\n")
    assert review.caption_text({"caption": ["one", "two"]}) == "one\ntwo"
    assert review.caption_text({"caption": "one sentence"}) == "one sentence"


def test_the_rule_file_has_llavas_three_llava_bench_rules():
    rules = json.loads(RULES.read_text())
    assert sorted(rules) == ["llava_bench_complex", "llava_bench_conv", "llava_bench_detail"]
    for rule in rules.values():
        assert rule["role"] == "Assistant"
        assert rule["prompt"].startswith("We would like to request your feedback on the performance of two AI "
                                         "assistants in response to the user question displayed above.")
        assert "a single line containing only two values" in rule["prompt"]


@pytest.mark.parametrize("text, pair", [
    ("8 9\nAssistant 2 is more detailed.", [8.0, 9.0]),
    ("7.5,6", [7.5, 6.0]),
    ("8, 9", [-1.0, -1.0]),  # "8  9" splits on single spaces into three parts: LLaVA counts it unparsed
    ("Assistant 1: 8\nAssistant 2: 9", [-1.0, -1.0]),
    ("eight nine", [-1.0, -1.0]),
    ("", [-1.0, -1.0]),
])
def test_parse_score_follows_llavas_first_line_rule(text, pair):
    assert review.parse_score(text) == pair


def judge_scoring(replies):
    """A judge that answers from `replies` in turn and records what it was asked."""
    asked = []

    def judge(content):
        asked.append(content)
        return replies[len(asked) - 1]

    judge.asked = asked
    return judge


def write_model_answers(path, n, text="a red circle"):
    path.write_text("".join(json.dumps({"question_id": i, "text": f"{text} {i}", "answer_id": f"a{i}"}) + "\n"
                            for i in range(n)))


def test_review_all_asks_the_judge_about_every_question_and_resumes(tmp_path):
    answers = tmp_path / "model.jsonl"
    write_model_answers(answers, 60)
    output = tmp_path / "reviews" / "model.jsonl"
    judge = judge_scoring([f"{i % 10 + 1} {i % 7 + 1}\nwhy" for i in range(60)])
    args = (str(BENCH / "questions.jsonl"), str(BENCH / "context.jsonl"), str(RULES),
            str(BENCH / "answers_gpt4.jsonl"), str(answers), str(output))
    assert review.review_all(*args, judge) == 60
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    first_q = json.loads((BENCH / "questions.jsonl").read_text().splitlines()[0])
    first_ref = json.loads((BENCH / "answers_gpt4.jsonl").read_text().splitlines()[0])
    first_ctx = json.loads((BENCH / "context.jsonl").read_text().splitlines()[0])
    rule = json.loads(RULES.read_text())[f"llava_bench_{first_q['category']}"]
    assert judge.asked[0] == review.review_prompt(first_q["text"], first_ctx["caption"], first_ref["text"],
                                                  "a red circle 0", rule)
    assert rows[0] == {"question_id": 0, "answer1_id": 0, "answer2_id": "a0",
                       "category": f"llava_bench_{first_q['category']}", "content": "1 1\nwhy", "tuple": [1.0, 1.0]}
    assert [r["tuple"] for r in rows[:3]] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]

    # an interrupted run: the last two reviews lost; the rerun asks only about those
    output.write_text("".join(line + "\n" for line in output.read_text().splitlines()[:58]))
    again = judge_scoring(["9 9", "9 8"])
    assert review.review_all(*args, again) == 2
    assert len(again.asked) == 2 and len(output.read_text().splitlines()) == 60
    assert review.review_all(*args, judge_scoring([])) == 0


def test_a_missing_answer_is_named_before_the_judge_is_asked(tmp_path):
    answers = tmp_path / "model.jsonl"
    write_model_answers(answers, 59)
    judge = judge_scoring(["1 1"] * 60)
    with pytest.raises(ScoringInputError, match=r"model\.jsonl: no answer for question_id 59 \(1 of 60\)"):
        review.review_all(str(BENCH / "questions.jsonl"), str(BENCH / "context.jsonl"), str(RULES),
                          str(BENCH / "answers_gpt4.jsonl"), str(answers), str(tmp_path / "r.jsonl"), judge)
    assert judge.asked == []


def test_summary_is_the_ratio_of_the_mean_scores_per_category_and_overall():
    reviews = [
        {"question_id": 0, "category": "llava_bench_conv", "tuple": [8.0, 6.0]},
        {"question_id": 1, "category": "llava_bench_conv", "tuple": [10.0, 9.0]},
        {"question_id": 2, "category": "llava_bench_detail", "tuple": [5.0, 5.0]},
        {"question_id": 3, "category": "llava_bench_complex", "tuple": [-1.0, -1.0]},
        {"question_id": 4, "category": "llava_bench_complex", "tuple": [9.0, 3.0]},
    ]
    scores = summary.summarize(reviews)
    assert scores["conv"] == {"relative": 83.3, "reference": 9.0, "model": 7.5, "n": 2}  # 7.5 / 9
    assert scores["detail"]["relative"] == 100.0
    assert scores["complex"] == {"relative": 25.0, "reference": 4.0, "model": 1.0, "n": 2}  # (-1, -1) counts
    assert scores["all"] == {"relative": 71.0, "reference": 6.2, "model": 4.4, "n": 5}  # 100 * 22 / 31
    assert summary.summarize(reviews, ignore=frozenset({"3", "4"}))["all"]["relative"] == round(100 * 20 / 23, 1)


def test_summary_cli_writes_the_scores_and_counts_unparsed_reviews(tmp_path, capsys):
    path = tmp_path / "reviews" / "model.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"question_id": 0, "category": "llava_bench_conv", "tuple": [8, 6]}) + "\n"
                    + json.dumps({"question_id": 1, "category": "llava_bench_detail", "tuple": [-1, -1]}) + "\n")
    assert summary.main(["-f", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LLaVA-Bench model: relative score 71.4 over 2 reviews (conv 75.0, detail 100.0; "
                          "model 2.50 vs reference 3.50 of 10; 1 unparsed)")
    assert json.loads((tmp_path / "reviews" / "model.score.json").read_text())["unparsed"] == 1
    path.write_text(json.dumps({"question_id": 0, "category": "llava_bench_conv"}) + "\n")
    assert summary.main(["-f", str(path)]) == 2
    assert "model.jsonl: review #1 has no score pair" in capsys.readouterr().err


def test_review_cli_needs_an_api_key(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    argv = ["-q", "q", "-c", "c", "-r", "r", "-a", "ref", "ans", "-o", "out"]
    assert review.main(argv) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err


def test_the_judge_without_the_openai_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(SystemExit, match=r"pip install -e \"\.\[review\]\""):
        review.openai_judge()


def test_llavabench_script_reviews_and_summarizes_when_a_key_is_set(tmp_path):
    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    data = tmp_path / "data"
    shutil.copytree(BENCH, data / "llava-bench-in-the-wild", ignore=shutil.ignore_patterns("answers", "reviews"))
    proc = run_script("llavabench", {"PYTHON": str(recorder), "CKPT": "/ckpt/llava-v1.5-7b", "DATA_ROOT": str(data),
                                     "OPENAI_API_KEY": "sk-test"})
    assert proc.returncode == 0, proc.stderr
    d, name = data / "llava-bench-in-the-wild", "llava-v1.5-7b-dart-0.778-128"
    calls = log.read_text().splitlines()
    assert calls[1:] == [
        f"-m llava.eval.benchmarks.llavabench.scorer --question {d}/questions.jsonl --context {d}/context.jsonl "
        f"--rule llava/eval/benchmarks/llavabench/rule.json --answer-list {d}/answers_gpt4.jsonl {d}/answers/{name}.jsonl "
        f"--output {d}/reviews/{name}.jsonl",
        f"-m llava.eval.benchmarks.llavabench.summarize -f {d}/reviews/{name}.jsonl",
    ]


def test_openai_judge_talks_to_an_openai_compatible_server(tmp_path, monkeypatch):
    """The real client against a local stand-in for OpenAI's chat API: LLaVA's request, the review back."""
    import http.server
    import threading

    requests = []

    class ChatAPI(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            requests.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"id": "r", "object": "chat.completion", "created": 0, "model": "gpt-4-0314",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": "7 4\nAssistant 1 ..."}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), ChatAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    try:
        assert review.openai_judge(max_tokens=1024)("the content") == "7 4\nAssistant 1 ..."
    finally:
        server.shutdown()
    (path, request), = requests
    assert path == "/v1/chat/completions"
    assert request["model"] == "gpt-4-0314" and request["temperature"] == 0.2 and request["max_tokens"] == 1024
    assert request["messages"] == [{"role": "system", "content": review.JUDGE_SYSTEM},
                                   {"role": "user", "content": "the content"}]


def test_an_answer_without_text_is_named(tmp_path):
    answers = tmp_path / "model.jsonl"
    answers.write_text(json.dumps({"question_id": 0}) + "\n")
    with pytest.raises(ScoringInputError, match=r"model\.jsonl: answer #1 lacks text"):
        review.review_all(str(BENCH / "questions.jsonl"), str(BENCH / "context.jsonl"), str(RULES),
                          str(BENCH / "answers_gpt4.jsonl"), str(answers), str(tmp_path / "r.jsonl"),
                          judge_scoring([]))
