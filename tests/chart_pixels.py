"""Reading a rendered bar chart (llava.data.charts) back from its pixels, for the tests of the ChartQA sample and
of the charts in the training data."""

from PIL import Image

from llava.data.charts import AXIS_X, BASELINE, PLOT_LEFT, PLOT_RIGHT, UNIT
from llava.data.scenes import COLORS, WORD_INK

RGB_COLORS = {rgb: name for name, rgb in COLORS.items()}


def find_bars(image: Image.Image) -> list[tuple[str, int]]:
    """(colour, height in value units) of each bar, left to right: bars are runs of one scene colour along the row
    above the baseline, a bar's height is where its colour ends above its middle column."""
    px = image.load()
    bars, x = [], PLOT_LEFT
    while x < PLOT_RIGHT:
        color = RGB_COLORS.get(px[x, BASELINE - 1])
        if color is None:
            x += 1
            continue
        start = x
        while px[x, BASELINE - 1] == px[start, BASELINE - 1]:
            x += 1
        height = next(h for h in range(1, BASELINE) if px[(start + x) // 2, BASELINE - 1 - h] != COLORS[color])
        assert height % 12 == 0, height  # multiples of 5 at 2.4 px
        bars.append((color, round(height / UNIT)))
    return bars


def chart_style(image: Image.Image) -> str:
    """"axis" where the y axis line is drawn left of the plot, else "values"."""
    return "axis" if image.getpixel((AXIS_X, BASELINE - 100)) == WORD_INK else "values"
