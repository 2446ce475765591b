"""HoloV before the language model: the official chunk scores, allotment and in-chunk order reproduced on
crafted inputs by a literal loop, and a tiny LLaVA's `generate` given DART's count of image tokens."""

import pytest
import torch
from test_engine import generate_single, scene
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config
from llava.model.pruning.holov import chunk_bounds, holov_tokens

pytestmark = pytest.mark.usefixtures("one_thread")


def official_holov(tokens, attention, total):
    """The official `HoloV` for one image, its equations written out with Python floats."""
    n = tokens.shape[0]
    size, rem = divmod(n, 16)
    bounds, s = [], 0
    for p in range(16):
        e = s + size + (1 if p < rem else 0)
        if e > s:
            bounds.append((s, e))
        s = e
    scores = []
    for s, e in bounds:
        c = e - s
        att = [float(a) for a in attention[s:e]]
        if c <= 1:
            scores.append(sum(att) / max(len(att), 1))
            continue
        unit = [tokens[i] / (float(tokens[i].norm()) + 1e-6) for i in range(s, e)]
        sim = [[0.0 if i == j else float(unit[i] @ unit[j]) for j in range(c)] for i in range(c)]
        mean = [sum(row) / (c - 1) for row in sim]
        var = [sum((x - mean[i]) ** 2 for x in sim[i]) / (c - 1) for i in range(c)]
        scaled = [a * 1e3 for a in att]
        k = (sum(abs(a) for a in scaled) / c) / (sum(abs(v) for v in var) / c + 1e-6)
        scores.append(sum(scaled[i] + 0.09 * var[i] * k for i in range(c)) / c)
    weights = [x / (sum(scores) + 1e-6) for x in scores]
    allotted = [int(w * total // 1) for w in weights]
    remaining = total - sum(allotted)
    for p in sorted(range(len(weights)), key=lambda p: -weights[p])[:max(remaining, 0)]:
        allotted[p] += 1
    picked = []
    for (s, e), a in zip(bounds, allotted):
        if a >= e - s:
            picked += list(range(s, e))
        elif a > 0:
            picked += sorted(range(s, e), key=lambda i: -float(attention[i]))[:a]
    return picked[:total] + [-1] * (total - len(picked[:total]))


@pytest.mark.parametrize("n, total", [(576, 64), (100, 30), (40, 38)])
def test_the_kept_tokens_follow_the_official_rule_on_crafted_inputs(n, total):
    torch.manual_seed(n)
    tokens = torch.randn(n, 12, dtype=torch.float64)
    attention = torch.rand(n, dtype=torch.float64) ** 4 / 16  # uneven, so some chunks get far more
    kept, offsets = holov_tokens(tokens, attention, total)
    expected = official_holov(tokens, attention, total)
    assert offsets.tolist() == expected
    real = offsets >= 0
    assert torch.equal(kept[real], tokens[offsets[real]]) and bool((kept[~real] == 0).all())
    assert kept.shape == (total, 12)


def test_chunks_split_the_remainder_over_the_first():
    assert [e - s for s, e in chunk_bounds(38)] == [3] * 6 + [2] * 10
    assert chunk_bounds(5) == [(i, i + 1) for i in range(5)]


def test_generate_gets_darts_count_of_image_tokens(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    images = process_images([scene(6)], processor, model.config)
    record = PruningRecord(dart_config=make_dart_config(method="holov", max_num_trunction=64))
    generate_single(model, ids, images, record, max_new_tokens=4)
    (span,) = record.image_spans[0]
    assert span[1] == 4 + 8 * (64 // 8)
