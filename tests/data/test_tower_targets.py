"""The dense per-patch targets the tiny vision tower is pretrained on (scripts/tiny/pretrain_vision_tower.py)
match the scene's geometry: a square fills a known block of patches, a word's ink lies in its cell."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from llava.data.scenes import COLORS, KINDS, WORDS, Scene, Shape, Word

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tiny" / "pretrain_vision_tower.py"


@pytest.fixture(scope="module")
def tower_script():
    spec = importlib.util.spec_from_file_location("pretrain_vision_tower", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_square_and_word_targets(tower_script):
    # A 56 px square centred in the bottom-right cell (px 224..336): it spans x, y in 280 +- 28 = [252, 308),
    # i.e. patches 18..21 in both directions (14 px patches), fully covered.
    square = Shape("square", "blue", "small", 8, 280, 280, 56)
    scene = Scene("white", (square,), Word("MOON", 0, 56, 56))
    t = tower_script.patch_targets(scene)

    blue, square_kind = 1 + list(COLORS).index("blue"), 1 + KINDS.index("square")
    inside = np.zeros((24, 24), dtype=bool)
    inside[18:22, 18:22] = True
    assert (t["colour"][inside] == blue).all() and (t["kind"][inside] == square_kind).all()
    # Patches the square does not touch (its border patches are partly covered, so leave a margin).
    outside = np.ones((24, 24), dtype=bool)
    outside[17:23, 17:23] = False
    assert (t["colour"][outside] == 0).all() and (t["kind"][outside] == 0).all()
    assert (t["object"][inside] == (blue - 1) * len(KINDS) + square_kind).all()
    assert (t["object"][outside] == 0).all()

    moon = 1 + WORDS.index("MOON")
    assert t["word"] == moon
    ink = t["ink"] > 0
    assert ink.any() and (t["ink"][ink] == moon).all()
    rows, cols = np.nonzero(ink)
    assert rows.max() < 8 and cols.max() < 8  # the word's cell is the top-left 8 x 8 patches

    # Cells: row-major 3 x 3 grid of 8 x 8 patch blocks, for every patch.
    assert t["cell"][0, 0] == 0 and t["cell"][0, 23] == 2 and t["cell"][12, 12] == 4 and t["cell"][23, 0] == 6
    assert (np.bincount(t["cell"].ravel()) == 64).all()


def test_object_classes_are_distinct_per_colour_and_kind(tower_script):
    classes = set()
    for colour in COLORS:
        for kind in KINDS:
            shape = Shape(kind, colour, "large", 4, 168, 168, 100)
            t = tower_script.patch_targets(Scene("white", (shape,)))
            values = set(np.unique(t["object"][t["object"] > 0]).tolist())
            assert len(values) == 1
            classes |= values
    assert classes == set(range(1, 1 + len(COLORS) * len(KINDS)))
    assert tower_script.PATCH_CLASSES["object"] == 1 + len(COLORS) * len(KINDS)
