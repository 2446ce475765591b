"""The training-only "chart_digits" kind (llava.data.detail): values-style charts whose bars stand at heights
unrelated to the digits above them, asked only for values. Read back from the pixels: the answer is the number
written above the bar the question names, and the heights do not give it."""

import json
import re
from dataclasses import replace

import pytest
from PIL import Image

from chart_pixels import find_bars
from llava.data.charts import BASELINE, UNIT, VALUES, Bar, Chart, render_chart
from llava.data.detail import write_detail_set
from llava.data.scenes import WORDS


def read_bars(image: Image.Image) -> list[dict]:
    """Each bar's colour and height from the pixels, then the number above it and the word under it: the only
    candidate whose rendering matches the pixels of its slot."""
    found = find_bars(image)
    heights = tuple(h for _, h in found)
    bars = tuple(Bar(color, WORDS[0], VALUES[0]) for color, _ in found)
    read = []
    for i, (color, height) in enumerate(found):
        left, right = (round(v) for v in Chart("values", bars).slot(i))
        above, under = (left, 0, right, BASELINE - round(height * UNIT)), (left, BASELINE + 2, right, image.height)

        def matches(region, field, candidates):
            return [c for c in candidates if render_chart(Chart("values", tuple(
                replace(b, **{field: c}) if j == i else b for j, b in enumerate(bars))), heights).crop(region).tobytes()
                == image.crop(region).tobytes()]

        (value,), (label,) = matches(above, "value", VALUES), matches(under, "label", WORDS)
        read.append({"color": color, "height": height, "value": value, "label": label})
    return read


def test_answers_are_the_written_digits_not_the_heights(tmp_path):
    path = write_detail_set(tmp_path, seed=5, n_images=12, kinds=["chart_digits"], turns=(2, 4))
    records = json.loads(path.read_text())
    assert len(records) == 12
    asked = height_would_answer = 0
    for record in records:
        bars = read_bars(Image.open(tmp_path / record["image"]).convert("RGB"))
        turns = record["conversations"]
        assert turns[0]["value"].startswith("<image>\n")
        for human, gpt in zip(turns[::2], turns[1::2]):
            question = human["value"].removeprefix("<image>\n").split("\n")[0]
            if m := re.fullmatch(r"What(?:'s| is) the value of the (\w+) bar\?", question):
                (bar,) = [b for b in bars if b["color"] == m[1]]
            else:
                m = re.fullmatch(r"What is the value of ([A-Z]+)(?: in the graph)?\?", question)
                assert m, question
                (bar,) = [b for b in bars if b["label"] == m[1]]
            assert gpt["value"] == str(bar["value"])
            asked += 1
            height_would_answer += bar["height"] == bar["value"]
    assert asked >= 24 and height_would_answer <= asked // 4


def test_heights_only_for_values_style_one_per_bar():
    chart = Chart("values", (Bar("red", "CAT", 45), Bar("blue", "DOG", 70)))
    assert render_chart(chart, (45, 70)).tobytes() == render_chart(chart).tobytes()
    with pytest.raises(ValueError, match="one height per bar"):
        render_chart(chart, (45,))
    with pytest.raises(ValueError, match="values-style"):
        render_chart(replace(chart, style="axis"), (45, 70))
