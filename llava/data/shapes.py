"""Rendering scenes to PIL images, and encoding them to bytes deterministically."""

from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from llava.data.scenes import BACKGROUNDS, COLORS, IMAGE_SIZE, WORD_INK, WORD_MAX_WIDTH, Scene, Shape, Word

WORD_FONT_SIZE = 44  # upper bound; long words get the largest size that fits WORD_MAX_WIDTH
WORD_STROKE = 1  # the bundled font is thin; a 1 px stroke makes letters span more than a sliver of a patch


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # The scalable default font is bundled with Pillow >= 10.1 (no file or network access).
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=None)
def fitted_font(text: str, max_width: int = WORD_MAX_WIDTH, max_size: int = WORD_FONT_SIZE,
                stroke: int = WORD_STROKE) -> ImageFont.FreeTypeFont:
    """The largest font size (at most `max_size`, in steps of 2, at least 12) in which `text` is at most
    `max_width` px wide: the scene words' rule, which charts and diagrams follow for their labels."""
    size = max_size
    while size > 12:
        left, _, right, _ = _font(size).getbbox(text, stroke_width=stroke)
        if right - left <= max_width:
            break
        size -= 2
    return _font(size)


def _star(shape: Shape) -> list[tuple[float, float]]:
    outer = shape.extent / 2
    inner = outer * 0.45
    points = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((shape.cx + r * math.cos(angle), shape.cy + r * math.sin(angle)))
    return points


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    fill = COLORS[shape.color]
    x0, y0, x1, y1 = shape.box
    if shape.kind == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(shape.cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    elif shape.kind == "star":
        draw.polygon(_star(shape), fill=fill)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def draw_word(draw: ImageDraw.ImageDraw, word: Word) -> None:
    draw.text(
        (word.cx, word.cy), word.text, fill=WORD_INK, font=fitted_font(word.text), anchor="mm",
        stroke_width=WORD_STROKE, stroke_fill=WORD_INK,
    )


def render(scene: Scene) -> Image.Image:
    """The scene as a 336x336 RGB image. Shapes are drawn without anti-aliasing, so every pixel inside a
    shape has exactly the shape's colour (the word is anti-aliased, like real text)."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        _draw_shape(draw, shape)
    if scene.word is not None:
        draw_word(draw, scene.word)
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    """PNG or JPEG bytes; same image -> same bytes (no timestamps or other metadata are written)."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", optimize=False, compress_level=6)
    elif fmt in ("jpg", "jpeg"):
        # 4:4:4 chroma keeps the colour of small shapes and thin edges close to the scene's RGB values.
        image.save(buf, format="JPEG", quality=92, subsampling=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()
