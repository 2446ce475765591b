"""The targets the tiny vision tower is pretrained on (scripts/tiny/pretrain_vision_tower.py) match the
scene: a square fills a known block of patches, a word's ink lies in its cell, and the scene summary counts
what a hand-written scene holds."""

import numpy as np
import pytest
import torch

from llava.data.scenes import BACKGROUNDS, COLORS, KINDS, WORDS, Scene, Shape, Word

@pytest.fixture(scope="module")
def tower_script(tiny_script):
    return tiny_script("pretrain_vision_tower")


# A 56 px blue square centred in the bottom-right cell (px 224..336): it spans x, y in 280 +- 28 = [252, 308),
# i.e. patches 18..21 in both directions (14 px patches), fully covered. MOON is written in the top-left cell.
SQUARE = Shape("square", "blue", "small", 8, 280, 280, 56)
SCENE = Scene("gray", (Shape("circle", "red", "large", 3, 56, 168, 90), SQUARE), Word("MOON", 0, 56, 56))


def test_local_targets_follow_the_geometry(tower_script):
    t = tower_script.local_targets(Scene("white", (SQUARE,), SCENE.word))
    blue, square_kind = 1 + list(COLORS).index("blue"), 1 + KINDS.index("square")
    inside = np.zeros((24, 24), dtype=bool)
    inside[18:22, 18:22] = True
    assert (t["colour"][inside] == blue).all() and (t["kind"][inside] == square_kind).all()
    outside = np.ones((24, 24), dtype=bool)
    outside[17:23, 17:23] = False  # the square's border patches are partly covered: leave a margin
    assert (t["colour"][outside] == 0).all() and (t["kind"][outside] == 0).all()
    assert (t["object"][inside] == (blue - 1) * len(KINDS) + square_kind).all()
    assert (t["object"][outside] == 0).all()

    moon = 1 + WORDS.index("MOON")
    assert t["cls_word"].tolist() == [moon]
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
            t = tower_script.local_targets(Scene("white", (Shape(kind, colour, "large", 4, 168, 168, 100),)))
            values = set(np.unique(t["object"][t["object"] > 0]).tolist())
            assert len(values) == 1
            classes |= values
    assert classes == set(range(1, 1 + len(COLORS) * len(KINDS)))


def test_scene_summary(tower_script):
    t = tower_script.scene_targets(SCENE)
    red_circle = 1 + list(COLORS).index("red") * len(KINDS) + KINDS.index("circle")
    blue_square = 1 + list(COLORS).index("blue") * len(KINDS) + KINDS.index("square")
    moon = 1 + len(COLORS) * len(KINDS) + WORDS.index("MOON")
    assert t["layout"].tolist() == [moon, 0, 0, red_circle, 0, 0, 0, 0, blue_square]
    # Every patch of a cell says what the cell holds: the left cell (rows 8..15, columns 0..7) the circle.
    assert (t["cell_content"][8:16, 0:8] == red_circle).all() and (t["cell_content"][0:8, 0:8] == moon).all()
    assert (t["cell_content"][8:16, 8:16] == 0).all()
    assert np.bincount(t["cell_content"].ravel()).tolist()[0] == 6 * 64
    assert t["background"].tolist() == [list(BACKGROUNDS).index("gray")]
    assert t["word"].tolist() == [1 + WORDS.index("MOON")] and t["n_shapes"].tolist() == [2]
    expected_colours = [1 if c in ("red", "blue") else 0 for c in COLORS]
    assert t["colour_counts"].tolist() == expected_colours
    assert t["kind_counts"].tolist() == [1 if k in ("circle", "square") else 0 for k in KINDS]
    assert sorted(np.nonzero(t["present"])[0] + 1) == sorted([red_circle, blue_square])


def test_losses_reach_zero_only_for_the_right_predictions(tower_script):
    """A head that predicts the targets exactly gets accuracy 1 and a small loss; a wrong one accuracy 0."""
    import random

    names = tower_script.TARGET_GROUPS["local"] + tower_script.TARGET_GROUPS["scene"]
    data = tower_script.batch(random.Random(0), 2, names)
    heads = tower_script.Heads(8, names)
    perfect, wrong = {}, {}
    for name in names:
        target = data[name]
        size = heads.heads[name].out_features
        if name in tower_script.SCENE_CLASSES and name != "cell_content":
            entries, classes = tower_script.SCENE_CLASSES[name]
            onehot = torch.nn.functional.one_hot(target, classes).float() * 50  # (B, entries, classes)
            logits = onehot.reshape(2, 1, entries * classes).expand(-1, 576, -1)
        else:
            logits = torch.nn.functional.one_hot(target, size).float() * 50
        perfect[name] = logits
        wrong[name] = -logits
    loss, accuracy = tower_script.losses_and_accuracy(perfect, data)
    assert float(loss) < 1e-6 and all(v == 1.0 for v in accuracy.values())
    _, accuracy = tower_script.losses_and_accuracy(wrong, data)
    scored = {n: v for n, v in accuracy.items() if n not in tower_script.LOCAL_CLASSES or (data[n] > 0).any()}
    assert len(scored) >= len(names) - 1 and all(v == 0.0 for v in scored.values()), accuracy


def test_targets_mix_groups_and_single_names(tower_script):
    names = tower_script.target_names(["local", "background", "word", "colour"])
    assert names == ("colour", "kind", "object", "ink", "cell", "cls_word", "background", "word")
    assert tower_script.target_names(["scene"]) == tuple(tower_script.SCENE_CLASSES)
    heads = tower_script.Heads(8, names)
    assert set(heads.heads) == set(names)
