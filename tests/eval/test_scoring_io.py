"""Shared scorer IO: JSONL reading with clear errors, id pairing, result paths, atomic writes."""

import json

import pytest

from llava.eval.core.scoring_io import (ScoringInputError, default_result_path, index_by_qid, read_answers, read_jsonl,
                                   write_json)


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": 1, "text": "x"}\n\n[1, 2]\n')
    with pytest.raises(ScoringInputError, match=r"a\.jsonl:3: not a JSON object"):
        read_jsonl(str(path))
    bad = []
    assert read_jsonl(str(path), bad) == [{"question_id": 1, "text": "x"}]
    assert bad == [3]


def test_missing_file_and_missing_fields(tmp_path):
    with pytest.raises(ScoringInputError, match="file not found"):
        read_jsonl(str(tmp_path / "nope.jsonl"))
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": 1}\n')
    with pytest.raises(ScoringInputError, match="answer #1 lacks text"):
        read_answers(str(path))


def test_index_by_qid_pairs_int_and_str_and_counts_duplicates():
    index, duplicates = index_by_qid([{"question_id": 5, "text": "a"}, {"question_id": "5", "text": "b"},
                                      {"question_id": 6, "text": "c"}])
    assert index["5"]["text"] == "b"      # the last one wins
    assert duplicates == 1


def test_default_result_path():
    assert default_result_path("answers/m.jsonl") == "answers/m.score.json"
    assert default_result_path("answers/m.v1.5.jsonl") == "answers/m.v1.5.score.json"
    assert default_result_path("answers/merge") == "answers/merge.score.json"


def test_write_json_creates_dirs_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "dir" / "r.json"
    write_json(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_answers_made_with_two_settings_are_refused(tmp_path):
    """Two runs with other settings appended to one file (possible before answer files were locked): a score over
    it would mix two models or two pruning budgets."""
    path = tmp_path / "a.jsonl"
    line = lambda qid, sid: {"question_id": qid, "text": "x", "metadata": {"settings_id": sid}}  # noqa: E731
    path.write_text("".join(json.dumps(line(i, "aaa")) + "\n" for i in range(2)) + json.dumps(line(2, "bbb")) + "\n")
    with pytest.raises(ScoringInputError, match=r"a\.jsonl: answers made with 2 settings.*2 by aaa, 1 by bbb"):
        read_answers(str(path))
    path.write_text(json.dumps(line(0, "aaa")) + "\n" + json.dumps({"question_id": 1, "text": "y"}) + "\n")
    with pytest.raises(ScoringInputError, match="1 without a settings id"):
        read_answers(str(path))
    path.write_text(json.dumps({"question_id": 1, "text": "y"}) + "\n")  # LLaVA's own files carry none: fine
    assert len(read_answers(str(path))) == 1


def test_a_failed_result_write_leaves_no_temp_file(tmp_path):
    result = tmp_path / "a.score.json"
    with pytest.raises(TypeError):
        write_json(str(result), {"accuracy": object()})  # fails half way, as a full disk would
    assert list(tmp_path.iterdir()) == []
