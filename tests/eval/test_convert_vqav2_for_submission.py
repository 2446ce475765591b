"""VQAv2 submission: LLaVA's paths, EvalAI normalization, "" for unanswered test questions."""

import json

from llava.eval.benchmarks.vqav2.convert import convert, main
from llava.eval.core.scoring_io import write_jsonl


def test_convert_normalizes_and_fills_missing():
    rows, missing = convert([{"question_id": 1, "text": "Two"}, {"question_id": "2", "text": "The dog."}],
                            [{"question_id": 1}, {"question_id": 2}, {"question_id": 3}])
    assert rows == [{"question_id": 1, "answer": "2"}, {"question_id": 2, "answer": "dog"},
                    {"question_id": 3, "answer": ""}]
    assert missing == 1


def test_cli_layout_and_bad_lines(tmp_path, capsys):
    split, ckpt = "llava_vqav2_mscoco_test-dev2015", "m"
    src = tmp_path / "answers" / split / ckpt / "merge.jsonl"
    write_jsonl(str(src), [{"question_id": 1, "text": "Yes,"}])
    with open(src, "a") as f:
        f.write("{broken\n")
    write_jsonl(str(tmp_path / "llava_vqav2_mscoco_test2015.jsonl"), [{"question_id": 1}, {"question_id": 2}])
    assert main(["--dir", str(tmp_path), "--ckpt", ckpt, "--split", split]) == 0
    assert "1 unreadable lines" in capsys.readouterr().out
    rows = json.loads((tmp_path / "answers_upload" / split / f"{ckpt}.json").read_text())
    assert rows == [{"question_id": 1, "answer": "yes"}, {"question_id": 2, "answer": ""}]
