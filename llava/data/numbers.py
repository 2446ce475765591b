"""Pages of written numbers: the digits of a values-style chart (`llava.data.charts`) without the chart, for the
tiny models to learn to read two digits before they must find them over a bar.

A page is 1-4 distinct numbers from 10 to 99 on a white 336x336 canvas, each centred in its own cell of the
scenes' 3x3 grid, drawn as the charts write a bar's value (the scenes' font at the charts' VALUE_FONT, their
ink and stroke). The tiny tokenizer spells a number digit by digit ("45" is "▁", "4", "5"), so an answer is
two glyphs read left to right, where the scene words the models read well are one token each
(docs/tiny_model_history.md, "Round 6"). `digit_turns` asks a lone number's first and last digit too: the tens digit
is learnt within a hundred steps of pages alone, the units digit only once it is asked by itself ("Round 7").
Training data only: no benchmark shows such a page.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from llava.data.charts import CHART_PROMPT, VALUE_FONT, WHITE, chart_font, draw_text
from llava.data.questions import PLACES
from llava.data.scenes import CELL, GRID, IMAGE_SIZE, POSITIONS

NUMBERS = tuple(range(10, 100))
MAX_NUMBERS = 4


@dataclass(frozen=True)
class Written:
    value: int  # one of NUMBERS
    cell: int  # 0..8, see llava.data.scenes.POSITIONS


def sample_numbers(rng: random.Random, count: int | None = None) -> tuple[Written, ...]:
    """`count` (default: 1..MAX_NUMBERS) distinct numbers in distinct cells, in reading order."""
    if count is not None and not 1 <= count <= MAX_NUMBERS:
        raise ValueError(f"a page holds 1 to {MAX_NUMBERS} numbers, got {count}")
    n = rng.randint(1, MAX_NUMBERS) if count is None else count
    cells = sorted(rng.sample(range(GRID * GRID), n))
    return tuple(Written(v, c) for v, c in zip(rng.sample(NUMBERS, n), cells))


def sample_number(rng: random.Random) -> tuple[Written, ...]:
    """One number in a random cell (the page of `digit_turns`)."""
    return (Written(rng.choice(NUMBERS), rng.randrange(GRID * GRID)),)


def cell_centre(cell: int) -> tuple[float, float]:
    return (cell % GRID + 0.5) * CELL, (cell // GRID + 0.5) * CELL


def render_numbers(numbers: tuple[Written, ...]) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    draw = ImageDraw.Draw(image)
    for written in numbers:
        draw_text(draw, cell_centre(written.cell), str(written.value), chart_font(VALUE_FONT), "mm")
    return image


def number_turns(numbers: tuple[Written, ...], rng: random.Random) -> list[tuple[str, str]]:
    """Each number asked for by its place in the scenes' words ("at the top left"; "in the image" when it is
    alone), in random order, then the highest when there are several (the chart questions' "max_value"); the
    charts' one-word prompt."""
    if len(numbers) == 1:
        asked = [("What number is written in the image?", str(numbers[0].value))]
    else:
        asked = [(f"What number is written {PLACES[POSITIONS[w.cell]]}?", str(w.value))
                 for w in rng.sample(numbers, len(numbers))]
        asked.append(("What is the highest number in the image?", str(max(w.value for w in numbers))))
    return [(f"{question}\n{CHART_PROMPT}", answer) for question, answer in asked]


DIGIT_QUESTIONS = ("What is the first digit of the number?", "What is the last digit of the number?",
                   "What number is written in the image?")


def digit_turns(written: tuple[Written, ...], rng: random.Random) -> list[tuple[str, str]]:
    """A lone number's first digit, its last digit and the whole number, in random order; the charts' prompt."""
    if len(written) != 1:
        raise ValueError(f"digit questions are about a lone number, got {len(written)} numbers")
    text = str(written[0].value)
    asked = list(zip(DIGIT_QUESTIONS, (text[0], text[-1], text)))
    return [(f"{question}\n{CHART_PROMPT}", answer) for question, answer in rng.sample(asked, len(asked))]
