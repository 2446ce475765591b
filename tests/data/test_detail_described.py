"""The fine-detail pages described in words (llava/data/detail.py): a text stage's data must state exactly what the
drawn page shows, and its questions must be answerable from the description alone."""

import json
import re

import pytest

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.data import charts, documents
from llava.data.detail import (
    describe_chart, describe_document, describe_infographic, write_described_detail_set,
)
from llava.data.scenes import Shape, Word


def _word(text, cell):
    return Word(text, cell, 0, 0)


def _shape(kind, color, cell):
    return Shape(kind, color, "small", cell, 0, 0, 30)


def test_document_lists_filled_cells_in_reading_order():
    doc = documents.Document((_word("CAT", 0), _word("SHIP", 4), _word("TREE", 8)))
    assert describe_document(doc) == (
        "a table with CAT in the top left cell, SHIP in the center cell and TREE in the bottom right cell.")


def test_chart_lists_bars_left_to_right_with_their_values():
    chart = charts.Chart("axis", (charts.Bar("orange", "BIRD", 95), charts.Bar("blue", "CAT", 45)))
    assert describe_chart(chart) == ("a bar chart with 2 bars, from left to right: an orange bar for BIRD at 95 and "
                                     "a blue bar for CAT at 45.")


def test_infographic_names_legend_entries_then_loose_shapes():
    shapes = (_shape("star", "green", 0), _shape("star", "red", 1), _shape("circle", "orange", 7))
    info = documents.Infographic("white", shapes, (_word("CAT", 2), _word("DOG", 8)))
    assert describe_infographic(info) == (
        "a legend: a red star next to CAT and an orange circle next to DOG; also a green star, "
        "on a white background.")


CELL = {name: k for k, name in enumerate(documents.CELL_NAMES)}
STEP = {"under": 3, "above": -3, "to the left of": -1, "to the right of": 1}


def _answer_from_description(description: str, question: str) -> str:
    """Answer a document question from the listing alone, by the table's geometry (3 x 3, reading order)."""
    at = {CELL[cell]: word for word, cell in re.findall(r"([A-Z]+) in the ([a-z ]+?) cell", description)}
    if m := re.match(r"What word is in the ([a-z ]+) cell\?", question):
        return at[CELL[m.group(1)]]
    m = re.match(r"Which word is (under|above|to the left of|to the right of) ([A-Z]+)\?", question)
    (cell,) = [c for c, w in at.items() if w == m.group(2)]
    return at[cell + STEP[m.group(1)]]


def test_described_documents_are_answerable_from_the_description(tmp_path):
    path = write_described_detail_set(tmp_path, seed=7, n=60, kinds=["document"], turns=(4, 8))
    records = json.loads(path.read_text())
    assert len(records) == 60
    asked = 0
    for record in records:
        assert "image" not in record
        turns = record["conversations"]
        head, first_question = turns[0]["value"].split("\n", 1)
        assert head.startswith("The image shows a table with ") and DEFAULT_IMAGE_TOKEN not in turns[0]["value"]
        questions = [first_question] + [t["value"] for t in turns[2::2]]
        for question, answer in zip(questions, [t["value"] for t in turns[1::2]]):
            assert _answer_from_description(head, question.split("\n")[0]) == answer
            asked += 1
    assert asked >= 4 * 60


def test_described_set_is_deterministic_and_refuses_undescribed_kinds(tmp_path):
    one = write_described_detail_set(tmp_path / "a", 3, 12, ["document", "chart", "infographic"]).read_bytes()
    assert one == write_described_detail_set(tmp_path / "b", 3, 12, ["document", "chart", "infographic"]).read_bytes()
    with pytest.raises(ValueError, match="diagram"):
        write_described_detail_set(tmp_path / "c", 3, 2, ["diagram"])


def test_cli_text_stage_and_mixed_stage(tmp_path, capsys, tiny_script):
    generate_detail_data = tiny_script("generate_detail_data").main
    assert generate_detail_data(["--out", str(tmp_path / "text"), "--n-images", "0", "--n-described", "5"]) == 0
    assert not (tmp_path / "text" / "llava_tiny_detail_mix.json").exists()
    assert len(json.loads((tmp_path / "text" / "llava_tiny_detail_described.json").read_text())) == 5
    assert generate_detail_data(["--out", str(tmp_path / "mix"), "--n-images", "4", "--n-described", "3"]) == 0
    mixed = json.loads((tmp_path / "mix" / "llava_tiny_detail_mix.json").read_text())
    assert sorted("image" in r for r in mixed) == [False] * 3 + [True] * 4
    assert "7 conversations" in capsys.readouterr().out
