"""Draw which image patches DART kept, on the image as the model saw it.

LLaVA-1.5 sees a 336 x 336 view of the image (padded to a square with the processor's mean colour, then
resized; `square`: shortest side resized, then centre-cropped) cut into a 24 x 24 grid of 14-pixel patches,
image token i = patch (i // 24, i % 24). Qwen2-VL / Qwen2.5-VL resize the image (`RESIZE_VIEW`) so that each
side is a multiple of 28 pixels and merge 2 x 2 patches into one token: a rows x cols grid that follows the
image's own shape, token i = cell (i // cols, i % cols). The overlay shows that view, dims the dropped cells
and outlines the kept ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw, ImageEnhance

# CLIP's normalisation mean, the colour LLaVA pads with (`expand2square(image, mean * 255)`).
CLIP_MEAN_RGB = (122, 116, 104)
KEPT_OUTLINE = (255, 214, 0)
# The view of a model that resizes the image to its token grid's shape (Qwen), as `image_aspect_ratio` names it.
RESIZE_VIEW = "resize"
OVERLAY_PIXELS = 504  # the longer side of an overlay: 24 patches x 21 pixels for LLaVA-1.5


def model_view(image: Image.Image, image_aspect_ratio: str | None, size: int,
               background: Sequence[int] = CLIP_MEAN_RGB) -> Image.Image:
    """The square `size` x `size` RGB view the vision tower gets (geometry only, no normalisation)."""
    image = image.convert("RGB")
    width, height = image.size
    if image_aspect_ratio == "pad":
        side = max(width, height)
        square = Image.new("RGB", (side, side), tuple(background))
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        return square.resize((size, size), Image.Resampling.BICUBIC)
    # CLIP processor: resize the shortest side to `size`, centre-crop `size` x `size`.
    scale = size / min(width, height)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    resized = image.resize(target, Image.Resampling.BICUBIC)
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def cell_pixels(grid: Sequence[int]) -> int:
    """Overlay pixels per grid cell: the longer side near `OVERLAY_PIXELS`, at least 4 pixels a cell."""
    return max(4, OVERLAY_PIXELS // max(grid))


def draw_kept_patches(image: Image.Image, kept: Iterable[int], grid: Sequence[int],
                      image_aspect_ratio: str | None = "pad", cell: int | None = None, dim: float = 0.3) -> Image.Image:
    """The model's view of `image` at `cell` pixels per patch (default `cell_pixels(grid)`): dropped patches
    darkened to `dim` of their brightness, kept ones (row-major indices into the `grid` = (rows, cols)) at full
    brightness and outlined. Only the `RESIZE_VIEW` takes a grid that is not square."""
    rows, cols = grid
    if rows != cols and image_aspect_ratio != RESIZE_VIEW:
        raise ValueError(f"the patch grid must be square for the {image_aspect_ratio!r} view, got {rows}x{cols}")
    kept = sorted(set(int(i) for i in kept))
    if kept and (kept[0] < 0 or kept[-1] >= rows * cols):
        raise ValueError(f"kept patch indices must be in [0, {rows * cols}), got {kept[0]}..{kept[-1]}")
    cell = cell or cell_pixels(grid)
    if image_aspect_ratio == RESIZE_VIEW:
        view = image.convert("RGB").resize((cols * cell, rows * cell), Image.Resampling.BICUBIC)
    else:
        view = model_view(image, image_aspect_ratio, rows * cell)
    result = ImageEnhance.Brightness(view).enhance(dim)
    draw = ImageDraw.Draw(result)
    for index in kept:
        row, col = divmod(index, cols)
        box = (col * cell, row * cell, (col + 1) * cell, (row + 1) * cell)
        result.paste(view.crop(box), box[:2])
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=KEPT_OUTLINE, width=1)
    return result


def side_by_side(panels: Sequence[Image.Image], gap: int = 8, background: Sequence[int] = (255, 255, 255)
                 ) -> Image.Image:
    """`panels` left to right, `gap` pixels apart, top-aligned (one overlay per image of a prompt)."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    width = sum(panel.width for panel in panels) + gap * (len(panels) - 1)
    height = max(panel.height for panel in panels)
    canvas = Image.new("RGB", (width, height), tuple(background))
    left = 0
    for panel in panels:
        canvas.paste(panel, (left, 0))
        left += panel.width + gap
    return canvas
