"""Bar charts the tiny model can learn to read, and ChartQA-style questions about them.

A chart is plain data that carries its own ground truth, like a scene (`llava.data.scenes`): 2-4 vertical bars
in the scene world's colours on a white 336x336 canvas, standing on a dark baseline, each with one of the
scene WORDS under it as its category label. Two styles of reading the values:

    "values"  each bar's value (a multiple of 5 from 10 to 95) is written above it in digits;
    "axis"    no digits on the bars: a labelled y axis (0, 20, ..., 100) with light grid lines, so that a value
              is read off the bar's height.

Everything is drawn with the renderer of the scenes (Pillow's bundled font, `WORD_INK`, a 1 px stroke, no
anti-aliasing on the bars), and a bar's value is its height in pixels over `UNIT`, so answering needs the fine
detail (a bar's top, the digits above it, the word under it): the tokens that pruning drops.

Every chart belongs to one split, decided by a stable hash of its content (`chart_split`), as scenes do: the
ChartQA sample (`llava.eval.benchmarks.chartqa.sample`) draws from "eval", training data from "train".

The questions (`ask_chart`) come in two phrasings, after ChartQA's two test sets: "augmented" (its questions
generated from chart summaries: one fixed template per kind) and "human" (written by people: other wordings,
several of them taken from ChartQA's human test questions). Answers are short: a number, a colour, a label
(lower case, as the scene questions answer words) or Yes / No (capitalised, as ChartQA labels write them).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw, ImageFont

from llava.data.questions import QA
from llava.data.scenes import COLORS, EVAL_BUCKETS, IMAGE_SIZE, WORD_INK, WORDS
from llava.data.shapes import fitted_font

# lmms-eval's ChartQA instruction for every model but Qwen-VL (lmms_eval/tasks/chartqa/chartqa.yaml, default
# post_prompt), written after the question on a new line.
CHART_PROMPT = "Answer the question with a single word."

BAR_COLORS = tuple(c for c in COLORS if c != "black")  # black is the ink of the baseline, axis and text
VALUES = tuple(range(10, 100, 5))
STYLES = ("values", "axis")
MIN_BARS, MAX_BARS = 2, 4
PHRASINGS = ("human", "augmented")  # ChartQA's two test sets

# Geometry (px). The plot spans PLOT_LEFT..PLOT_RIGHT; a value v is a bar of v * UNIT px above BASELINE, so
# 100 reaches BASELINE - 240 = 52 and the digits above a 95 bar still fit.
PLOT_LEFT, PLOT_RIGHT = 52, 328
BASELINE = 292
UNIT = 2.4
BAR_MAX_WIDTH = 64
AXIS_X = PLOT_LEFT - 6  # the y axis line, 2 px wide (axis style)
TICKS = (0, 20, 40, 60, 80, 100)
GRID_INK = (225, 225, 225)
WHITE = (255, 255, 255)
VALUE_FONT = 28  # the digits above the bars
TICK_FONT = 20  # the y axis labels
LABEL_FONT = 28  # upper bound for the words under the bars; a word gets the largest size that fits its slot
LABEL_Y = BASELINE + 24  # centre of the words under the bars
STROKE = 1  # as the scene words (llava.data.shapes.WORD_STROKE)


@dataclass(frozen=True)
class Bar:
    color: str  # a key of COLORS (not black)
    label: str  # one of WORDS, as drawn (upper case)
    value: int  # one of VALUES


@dataclass(frozen=True)
class Chart:
    style: str  # one of STYLES
    bars: tuple[Bar, ...]  # left to right; distinct colours, labels and values

    def signature(self) -> str:
        """What the chart shows: two charts with equal signatures are the same image."""
        return self.style + "|" + "|".join(f"{b.color}:{b.label}={b.value}" for b in self.bars)

    def to_dict(self) -> dict:
        return {"type": "chart", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "Chart":
        return cls(d["style"], tuple(Bar(**b) for b in d["bars"]))

    def tallest(self) -> Bar:
        return max(self.bars, key=lambda b: b.value)

    def shortest(self) -> Bar:
        return min(self.bars, key=lambda b: b.value)

    def slot(self, i: int) -> tuple[float, float]:
        """The x range of bar i's slot (its share of the plot width)."""
        width = (PLOT_RIGHT - PLOT_LEFT) / len(self.bars)
        return PLOT_LEFT + i * width, PLOT_LEFT + (i + 1) * width

    def bar_box(self, i: int, height: int | None = None) -> tuple[int, int, int, int]:
        """(x0, top, x1, BASELINE) of bar i: its pixels are x0 <= x < x1, top <= y < BASELINE. The bar stands
        `height` value units tall (default: its value)."""
        left, right = self.slot(i)
        width = min(BAR_MAX_WIDTH, int((right - left) * 0.6))
        x0 = round((left + right) / 2 - width / 2)
        units = self.bars[i].value if height is None else height
        return x0, BASELINE - round(units * UNIT), x0 + width, BASELINE


def chart_split(chart: Chart) -> str:
    """"eval" or "train", from a stable hash (crc32, not Python's salted hash) of the chart's signature: one
    chart in EVAL_BUCKETS is held out, as for scenes."""
    return "eval" if zlib.crc32(("chart|" + chart.signature()).encode()) % EVAL_BUCKETS == 0 else "train"


def _draw_chart(rng: random.Random, n_bars: int | None, style: str | None) -> Chart:
    n = n_bars if n_bars is not None else rng.randint(MIN_BARS, MAX_BARS)
    colors, labels, values = rng.sample(BAR_COLORS, n), rng.sample(WORDS, n), rng.sample(VALUES, n)
    return Chart(style or rng.choice(STYLES), tuple(Bar(c, w, v) for c, w, v in zip(colors, labels, values)))


def sample_chart(rng: random.Random, split: str | None = "train", n_bars: int | None = None,
                 style: str | None = None, max_tries: int = 1000) -> Chart:
    """Draw a chart from `rng` (never the global RNG) until it falls in `split` ("train", "eval"; None: any).
    n_bars: 2..4, or None for uniform; style: one of STYLES, or None for either."""
    if n_bars is not None and not MIN_BARS <= n_bars <= MAX_BARS:
        raise ValueError(f"n_bars must be in {MIN_BARS}..{MAX_BARS}, got {n_bars}")
    if style is not None and style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if split not in (None, "train", "eval"):
        raise ValueError(f"split must be 'train', 'eval' or None, got {split!r}")
    for _ in range(max_tries):
        chart = _draw_chart(rng, n_bars, style)
        if split is None or chart_split(chart) == split:
            return chart
    raise RuntimeError(f"no {split} chart found in {max_tries} draws")


# -- drawing -------------------------------------------------------------------------------------------


def chart_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # the scenes' font, bundled with Pillow


def label_font(text: str, max_width: int) -> ImageFont.FreeTypeFont:
    """The largest font (at most LABEL_FONT) in which `text` is at most `max_width` px wide."""
    return fitted_font(text, max_width, LABEL_FONT, STROKE)


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, anchor: str) -> None:
    draw.text(xy, text, fill=WORD_INK, font=font, anchor=anchor, stroke_width=STROKE, stroke_fill=WORD_INK)


def render_chart(chart: Chart, heights: tuple[int, ...] | None = None) -> Image.Image:
    """The chart as a 336x336 RGB image: grid and axis (axis style), bars, baseline, digits, labels.
    heights: the bars' heights in value units when they are not the values (training charts whose written
    digits are the only way to read a value, `llava.data.detail`'s "chart_digits"); values style only."""
    if heights is not None and (chart.style != "values" or len(heights) != len(chart.bars)):
        raise ValueError(f"heights need a values-style chart and one height per bar, got {len(heights)} heights "
                         f"for a {chart.style}-style chart of {len(chart.bars)} bars")
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    draw = ImageDraw.Draw(image)
    if chart.style == "axis":
        for tick in TICKS:
            y = BASELINE - round(tick * UNIT)
            if tick:
                draw.line((AXIS_X, y, PLOT_RIGHT - 1, y), fill=GRID_INK, width=1)
            draw_text(draw, (AXIS_X - 4, y), str(tick), chart_font(TICK_FONT), "rm")
        draw.rectangle((AXIS_X, BASELINE - round(TICKS[-1] * UNIT), AXIS_X + 1, BASELINE - 1), fill=WORD_INK)
    elif chart.style != "values":
        raise ValueError(f"unknown chart style {chart.style!r}")
    for i, bar in enumerate(chart.bars):
        x0, top, x1, bottom = chart.bar_box(i, None if heights is None else heights[i])
        draw.rectangle((x0, top, x1 - 1, bottom - 1), fill=COLORS[bar.color])
        centre = (x0 + x1) / 2
        if chart.style == "values":
            draw_text(draw, (centre, top - 6), str(bar.value), chart_font(VALUE_FONT), "mb")
        left, right = chart.slot(i)
        draw_text(draw, (centre, LABEL_Y), bar.label, label_font(bar.label, int(right - left) - 8), "mm")
    draw.rectangle((AXIS_X, BASELINE, PLOT_RIGHT - 1, BASELINE + 1), fill=WORD_INK)
    return image


# -- questions -----------------------------------------------------------------------------------------

# kind -> (augmented template, human template). {color}: a bar's colour; {label}: a bar's word as drawn;
# {a}, {b}: two bars' colours.
TEMPLATES: dict[str, tuple[str, str]] = {
    "count": ("How many bars are there?", "How many bars are shown in the chart?"),
    "color_value": ("What is the value of the {color} bar?", "What's the value of the {color} bar?"),
    "label_value": ("What is the value of {label}?", "What is the value of {label} in the graph?"),
    "tallest_color": ("Which color is the tallest bar?", "What's the color of the highest bar?"),
    "shortest_color": ("Which color is the shortest bar?", "What's the color of the lowest bar?"),
    "tallest_label": ("Which label has the highest value?", "Which category has the largest bar?"),
    "max_value": ("What is the highest value in the chart?", "What's the value of the largest bar?"),
    "compare": ("Is the {a} bar taller than the {b} bar?", "Is the value of the {a} bar more than the {b} bar?"),
}
KINDS = tuple(TEMPLATES)


def ask_chart(chart: Chart, rng: random.Random, kind: str, phrasing: str = "augmented") -> QA:
    """One question of `kind` (a key of TEMPLATES) about `chart`, worded for `phrasing` ("human" or
    "augmented"). The QA's `kind` is "chart_<kind>", its `detail` the phrasing."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {', '.join(PHRASINGS)}, got {phrasing!r}")
    template = TEMPLATES[kind][0 if phrasing == "augmented" else 1]
    bar = rng.choice(chart.bars)
    if kind == "count":
        answer, fields = str(len(chart.bars)), {}
    elif kind == "color_value":
        answer, fields = str(bar.value), {"color": bar.color}
    elif kind == "label_value":
        answer, fields = str(bar.value), {"label": bar.label}
    elif kind in ("tallest_color", "shortest_color"):
        answer, fields = (chart.tallest() if kind == "tallest_color" else chart.shortest()).color, {}
    elif kind == "tallest_label":
        answer, fields = chart.tallest().label.lower(), {}
    elif kind == "max_value":
        answer, fields = str(chart.tallest().value), {}
    else:  # compare: yes and no equally often
        a, b = sorted(rng.sample(chart.bars, 2), key=lambda x: x.value, reverse=rng.random() < 0.5)
        answer, fields = ("Yes" if a.value > b.value else "No"), {"a": a.color, "b": b.color}
    return QA(f"chart_{kind}", template.format(**fields), answer, detail=phrasing)


def chart_questions(chart: Chart, rng: random.Random, n: int, phrasing: str) -> list[QA]:
    """n questions of distinct kinds about `chart` (n <= len(KINDS))."""
    return [ask_chart(chart, rng, kind, phrasing) for kind in rng.sample(KINDS, n)]
