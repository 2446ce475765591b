"""The training-only kinds of llava.data.detail that ask one family of questions only, read back from the pixels:
"chart_digits" (values-style charts whose bars stand at heights unrelated to the digits above them: the answer is
the number written above the bar the question names, and the heights do not give it), "chart_values" (charts of
either style asked only for values, each bar once), "infographic_legend" (legends asked only what sits next
to what), "chart_labels" (charts asked only which word is under a bar), "bar_values" (values-style charts asked
every bar's value by its colour), and "numbers", "number_pair" and "digits" (a chart's digits without the chart,
asked by place or digit by digit)."""

import functools
import json
import random
import re
from dataclasses import replace

import pytest
from PIL import Image, ImageDraw, ImageFont

from chart_pixels import chart_style, find_bars
from llava.data.charts import BASELINE, UNIT, VALUES, Bar, Chart, render_chart
from llava.data.detail import write_detail_set
from llava.data.documents import render_infographic, sample_infographic
from llava.data.numbers import sample_numbers
from llava.data.scenes import WORDS

VALUE_QUESTION = re.compile(
    r"What(?:'s| is) the value of (?:the (?P<color>\w+) bar|(?P<label>[A-Z]+)(?: in the graph)?)\?")
LARGEST_QUESTION = re.compile(r"What(?:'s| is) the (?:highest value in the chart|value of the largest bar)\?")


def read_bars(image: Image.Image) -> list[dict]:
    """Each bar's colour and height from the pixels, then the number above it (values style; axis style: the
    height is the value) and the word under it: the only candidate whose rendering matches the pixels of its
    slot."""
    found = find_bars(image)
    style = chart_style(image)
    heights = tuple(h for _, h in found) if style == "values" else None
    bars = tuple(Bar(color, WORDS[0], VALUES[0] if heights else height) for color, height in found)
    read = []
    for i, (color, height) in enumerate(found):
        left, right = (round(v) for v in Chart(style, bars).slot(i))
        above, under = (left, 0, right, BASELINE - round(height * UNIT)), (left, BASELINE + 2, right, image.height)

        def matches(region, field, candidates):
            return [c for c in candidates if render_chart(Chart(style, tuple(
                replace(b, **{field: c}) if j == i else b for j, b in enumerate(bars))), heights).crop(region).tobytes()
                == image.crop(region).tobytes()]

        (value,) = matches(above, "value", VALUES) if heights else (height,)
        (label,) = matches(under, "label", WORDS)
        read.append({"color": color, "height": height, "value": value, "label": label})
    return read


def named_bar(bars: list[dict], question: re.Match) -> dict:
    """The one bar a VALUE_QUESTION names, by its colour or its label."""
    (bar,) = [b for b in bars if question["color"] in (None, b["color"]) and question["label"] in (None, b["label"])]
    return bar


def questions_and_answers(record: dict) -> list[tuple[str, str]]:
    turns = record["conversations"]
    assert turns[0]["value"].startswith("<image>\n")
    return [(human["value"].removeprefix("<image>\n").split("\n")[0], gpt["value"])
            for human, gpt in zip(turns[::2], turns[1::2])]


def test_answers_are_the_written_digits_not_the_heights(tmp_path):
    path = write_detail_set(tmp_path, seed=5, n_images=12, kinds=["chart_digits"], turns=(2, 4))
    records = json.loads(path.read_text())
    assert len(records) == 12
    asked = height_would_answer = 0
    for record in records:
        bars = read_bars(Image.open(tmp_path / record["image"]).convert("RGB"))
        for question, answer in questions_and_answers(record):
            m = VALUE_QUESTION.fullmatch(question)
            assert m, question
            bar = named_bar(bars, m)
            assert answer == str(bar["value"])
            asked += 1
            height_would_answer += bar["height"] == bar["value"]
    assert asked >= 24 and height_would_answer <= asked // 4


def test_chart_values_asks_each_bar_once_for_its_value(tmp_path):
    path = write_detail_set(tmp_path, seed=6, n_images=16, kinds=["chart_values"], turns=(6, 12))
    records = json.loads(path.read_text())
    styles, largest = set(), 0
    for record in records:
        image = Image.open(tmp_path / record["image"]).convert("RGB")
        bars = read_bars(image)
        styles.add(chart_style(image))
        answers = []
        for question, answer in questions_and_answers(record):
            if LARGEST_QUESTION.fullmatch(question):
                assert answer == str(max(b["value"] for b in bars))
                largest += 1
            else:
                m = VALUE_QUESTION.fullmatch(question)
                assert m, question
                bar = named_bar(bars, m)
                assert answer == str(bar["value"]) == str(bar["height"])
            answers.append(answer)
        assert len(answers) == len(set(answers)) <= len(bars)
    assert styles == {"axis", "values"} and largest >= 4


def test_bar_values_asks_every_bars_value_by_its_colour_once(tmp_path):
    path = write_detail_set(tmp_path, seed=11, n_images=12, kinds=["bar_values"], turns=(1, 2))
    wordings, orders = set(), set()
    for record in json.loads(path.read_text()):
        image = Image.open(tmp_path / record["image"]).convert("RGB")
        assert chart_style(image) == "values"
        bars = read_bars(image)
        asked = questions_and_answers(record)
        matches = [VALUE_QUESTION.fullmatch(q) for q, _ in asked]
        assert all(m and m["color"] for m in matches), asked
        assert sorted(m["color"] for m in matches) == sorted(b["color"] for b in bars)  # every bar, once
        assert [a for _, a in asked] == [str(named_bar(bars, m)["value"]) for m in matches]
        wordings.add(asked[0][0].split(" the value")[0])
        orders.add([m["color"] for m in matches] == [b["color"] for b in bars])
    assert wordings == {"What is", "What's"} and orders == {True, False}  # both ChartQA wordings, shuffled


def test_infographic_legend_asks_only_what_sits_next_to_what(tmp_path):
    """Each answer is the legend entry's the question names. The page is redrawn from the generator's random
    stream (each image's own: "detail/<seed>/<k>", the number of turns drawn first) and must match the image
    pixel for pixel before its legend is trusted."""
    path = write_detail_set(tmp_path, seed=7, n_images=12, kinds=["infographic_legend"], turns=(6, 12))
    asked = 0
    for k, record in enumerate(json.loads(path.read_text())):
        rng = random.Random(f"detail/7/{k}")
        rng.randint(6, 12)
        page = sample_infographic(rng, split="train")
        assert render_infographic(page).tobytes() == Image.open(tmp_path / record["image"]).convert("RGB").tobytes()
        entries = [(shape.color, shape.kind, word.text) for shape, word in page.labelled()]
        for question, answer in questions_and_answers(record):
            if m := re.fullmatch(r"What word is next to the (\w+) (\w+)\?", question):
                expected = [w for c, kind, w in entries if (c, kind) == (m[1], m[2])]
            elif m := re.fullmatch(r"What color is the shape next to ([A-Z]+)\?", question):
                expected = [c for c, _, w in entries if w == m[1]]
            else:
                m = re.fullmatch(r"What shape is next to ([A-Z]+)\?", question)
                assert m, question
                expected = [kind for _, kind, w in entries if w == m[1]]
            assert [answer] == expected
            asked += 1
    assert asked >= 40


def test_heights_only_for_values_style_one_per_bar():
    chart = Chart("values", (Bar("red", "CAT", 45), Bar("blue", "DOG", 70)))
    assert render_chart(chart, (45, 70)).tobytes() == render_chart(chart).tobytes()
    with pytest.raises(ValueError, match="one height per bar"):
        render_chart(chart, (45,))
    with pytest.raises(ValueError, match="values-style"):
        render_chart(replace(chart, style="axis"), (45, 70))


PLACE_CELLS = {"at the top left": 0, "at the top": 1, "at the top right": 2, "on the left": 3, "in the center": 4,
               "on the right": 5, "at the bottom left": 6, "at the bottom": 7, "at the bottom right": 8}


@functools.cache
def drawn_numbers() -> dict[bytes, list[int]]:
    """A 112 px cell's pixels -> the numbers from 10 to 99 that Pillow's bundled font (size 28, 1 px stroke,
    centred) draws so."""
    drawn: dict[bytes, list[int]] = {}
    for n in range(10, 100):
        blank = Image.new("RGB", (112, 112), "white")
        ImageDraw.Draw(blank).text((56, 56), str(n), fill=(25, 25, 25), font=ImageFont.load_default(size=28),
                                   anchor="mm", stroke_width=1, stroke_fill=(25, 25, 25))
        drawn.setdefault(blank.tobytes(), []).append(n)
    return drawn


def read_numbers(image: Image.Image) -> dict[int, int]:
    """cell -> the number written in it: the cells of the 3x3 grid with dark pixels, each read as the one number
    whose drawing (`drawn_numbers`) matches the cell."""
    found = {}
    for cell in range(9):
        box = (cell % 3 * 112, cell // 3 * 112, cell % 3 * 112 + 112, cell // 3 * 112 + 112)
        crop = image.crop(box)
        if min(crop.convert("L").getdata()) > 128:
            continue
        (found[cell],) = drawn_numbers().get(crop.tobytes(), [])
    return found


def test_numbers_are_asked_by_place_then_the_highest(tmp_path):
    path = write_detail_set(tmp_path, seed=8, n_images=16, kinds=["numbers"])
    sizes = set()
    for record in json.loads(path.read_text()):
        written = read_numbers(Image.open(tmp_path / record["image"]).convert("RGB"))
        sizes.add(len(written))
        asked = questions_and_answers(record)
        if len(written) == 1:
            assert asked == [("What number is written in the image?", str(*written.values()))]
            continue
        places = [re.fullmatch(r"What number is written (.+)\?", q) for q, _ in asked[:-1]]
        assert sorted(PLACE_CELLS[m[1]] for m in places) == sorted(written)
        assert [a for _, a in asked[:-1]] == [str(written[PLACE_CELLS[m[1]]]) for m in places]
        assert asked[-1] == ("What is the highest number in the image?", str(max(written.values())))
    assert sizes == {1, 2, 3, 4}


def test_number_pair_asks_two_numbers_by_place_then_the_higher(tmp_path):
    path = write_detail_set(tmp_path, seed=12, n_images=16, kinds=["number_pair"])
    cells = set()
    for record in json.loads(path.read_text()):
        written = read_numbers(Image.open(tmp_path / record["image"]).convert("RGB"))
        assert len(written) == 2
        cells |= set(written)
        asked = questions_and_answers(record)
        places = [re.fullmatch(r"What number is written (.+)\?", q) for q, _ in asked[:-1]]
        assert [(PLACE_CELLS[m[1]], a) for m, (_, a) in zip(places, asked)] in (
            [(c, str(v)) for c, v in written.items()], [(c, str(v)) for c, v in reversed(written.items())])
        assert asked[-1] == ("What is the highest number in the image?", str(max(written.values())))
    assert cells == set(range(9))
    with pytest.raises(ValueError, match="1 to 4 numbers, got 5"):
        sample_numbers(random.Random(0), count=5)


def test_digits_asks_a_lone_numbers_first_and_last_digit_and_itself(tmp_path):
    path = write_detail_set(tmp_path, seed=10, n_images=24, kinds=["digits"])
    cells, orders = set(), set()
    for record in json.loads(path.read_text()):
        ((cell, value),) = read_numbers(Image.open(tmp_path / record["image"]).convert("RGB")).items()
        cells.add(cell)
        asked = questions_and_answers(record)
        orders.add(tuple(q for q, _ in asked))
        assert sorted(asked) == sorted([("What is the first digit of the number?", str(value // 10)),
                                        ("What is the last digit of the number?", str(value % 10)),
                                        ("What number is written in the image?", str(value))])
    assert len(cells) >= 6 and len(orders) >= 4  # numbers all over the page, questions in shuffled orders


def test_chart_labels_asks_the_word_under_each_bar_once(tmp_path):
    path = write_detail_set(tmp_path, seed=9, n_images=12, kinds=["chart_labels"], turns=(6, 12))
    styles = set()
    for record in json.loads(path.read_text()):
        image = Image.open(tmp_path / record["image"]).convert("RGB")
        bars = read_bars(image)  # heights from the pixels: the tallest bar is the highest value in both styles
        styles.add(chart_style(image))
        by_height = sorted(bars, key=lambda b: b["height"])
        asked = questions_and_answers(record)
        assert asked[0] in [(q, by_height[-1]["label"].lower()) for q in
                            ("Which label has the highest value?", "Which category has the largest bar?")]
        assert asked[1] == ("Which label has the lowest value?", by_height[0]["label"].lower())
        named = [re.fullmatch(r"What is the label of the (\w+) bar\?", q) for q, _ in asked[2:]]
        assert sorted(m[1] for m in named) == sorted(b["color"] for b in by_height[1:-1])
        label_of = {b["color"]: b["label"].lower() for b in bars}
        assert [a for _, a in asked[2:]] == [label_of[m[1]] for m in named]
    assert styles == {"axis", "values"}
