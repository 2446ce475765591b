"""MM-Vet results file: {"v1_<question_id>": answer}."""

import json

from llava.eval.benchmarks.mmvet.convert import main
from llava.eval.core.scoring_io import write_jsonl


def test_cli(tmp_path, capsys):
    write_jsonl(str(tmp_path / "a.jsonl"), [{"question_id": 0, "text": "A red car."}, {"question_id": 7, "text": "42"}])
    dst = tmp_path / "results" / "m.json"
    assert main(["--src", str(tmp_path / "a.jsonl"), "--dst", str(dst)]) == 0
    assert json.loads(dst.read_text()) == {"v1_0": "A red car.", "v1_7": "42"}
    assert "wrote 2 answers" in capsys.readouterr().out


def test_answer_without_text_is_an_error(tmp_path, capsys):
    write_jsonl(str(tmp_path / "a.jsonl"), [{"question_id": 0}])
    assert main(["--src", str(tmp_path / "a.jsonl"), "--dst", str(tmp_path / "m.json")]) == 2
    assert "answer #1 lacks text" in capsys.readouterr().err
