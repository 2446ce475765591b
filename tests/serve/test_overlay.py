import pytest
from PIL import Image

from llava.serve.overlay import CLIP_MEAN_RGB, KEPT_OUTLINE, draw_kept_patches, model_view


def test_pad_view_centres_the_image_on_the_mean_colour():
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    view = model_view(image, "pad", 336)
    assert view.size == (336, 336)
    # 200x100 padded to 200x200: rows 0..49 and 150..199 are padding, i.e. the top and bottom quarter.
    assert view.getpixel((168, 20)) == CLIP_MEAN_RGB
    assert view.getpixel((168, 320)) == CLIP_MEAN_RGB
    assert view.getpixel((168, 168)) == (255, 0, 0)


def test_square_view_centre_crops_like_the_clip_processor():
    image = Image.new("RGB", (300, 100), (0, 0, 255))
    image.paste((0, 255, 0), (0, 0, 100, 100))  # the left third is cropped away
    view = model_view(image, "square", 336)
    assert view.size == (336, 336)
    assert view.getpixel((10, 168)) == (0, 0, 255)


def test_kept_patches_stay_bright_and_dropped_ones_are_dimmed():
    image = Image.new("RGB", (336, 336), (200, 200, 200))
    kept = [0, 25, 575]  # (0,0), (1,1), (23,23)
    cell = 10
    overlay = draw_kept_patches(image, kept, (24, 24), "pad", cell=cell, dim=0.25)
    assert overlay.size == (240, 240)

    def centre(index):
        row, col = divmod(index, 24)
        return overlay.getpixel((col * cell + cell // 2, row * cell + cell // 2))

    for index in kept:
        assert centre(index) == (200, 200, 200)
    for index in (1, 24, 300, 574):
        assert centre(index) == (50, 50, 50)
    assert overlay.getpixel((10, 10)) == KEPT_OUTLINE  # the outline of patch 25 = (1, 1)


def test_overlay_rejects_indices_outside_the_grid():
    with pytest.raises(ValueError, match=r"\[0, 576\)"):
        draw_kept_patches(Image.new("RGB", (10, 10)), [576], (24, 24))
