"""DART before layer 0 (`dart_k0`): DART's steps, written out here as a loop, on the input embeddings (pivots
by their L1 norm), pruned before layer 0 of a tiny LLaVA's `generate` with DART's budget."""

import pytest
import torch
from test_engine import generate_single, scene
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import SpanInputs, make_dart_config, parse_dart_config
from llava.model.pruning.config import dart_kept_count
from llava.model.pruning.dart_k0 import select

pytestmark = pytest.mark.usefixtures("one_thread")


def dart_by_hand(embeds, start, count, cfg):
    """DART's reference steps on embeddings: pivots are the largest L1 norms (image pivots kept, text pivots
    after the image), then each pivot, in the order of a Python set of their positions, takes the not yet taken
    non-pivot image tokens least cosine-similar to it."""
    norms = [float(embeds[i].abs().sum()) for i in range(embeds.shape[0])]
    image = list(range(start, start + count))
    text = list(range(start + count, embeds.shape[0]))
    image_pivots = sorted(image, key=lambda i: -norms[i])[:cfg.pivot_image_token]
    text_pivots = sorted(text, key=lambda i: -norms[i])[:cfg.pivot_text_token]
    per_pivot = cfg.budget_per_pivot(count)
    taken = set(image_pivots)
    for pivot in set(image_pivots + text_pivots):
        candidates = [i for i in image if i not in taken]
        cos = {i: float(torch.nn.functional.cosine_similarity(embeds[pivot], embeds[i], dim=0)) for i in candidates}
        taken.update(sorted(candidates, key=lambda i: cos[i])[:per_pivot])
    return sorted(taken)


def test_the_selection_is_darts_on_the_embeddings_of_crafted_inputs():
    torch.manual_seed(1)
    embeds = torch.randn(40, 6, dtype=torch.float64)
    cfg = parse_dart_config(make_dart_config(method="dart_k0", max_num_trunction=8, pivot_image_token=2,
                                             pivot_text_token=2), num_hidden_layers=4)
    start, count = 5, 24
    kept = select(SpanInputs((start, count), torch.arange(start + count, 40), embeddings=embeds), cfg)
    assert kept.tolist() == dart_by_hand(embeds, start, count, cfg)
    assert kept.numel() == dart_kept_count(count, cfg)


def test_generate_prunes_before_layer_0_with_darts_budget(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    images = process_images([scene(4)], processor, model.config)
    settings = make_dart_config(method="dart_k0", max_num_trunction=64)
    record = PruningRecord(dart_config=settings)
    generate_single(model, ids, images, record, max_new_tokens=4)
    assert [stage.layer for stage in record.stages] == [0]
    assert record.num_kept_image_tokens() == 4 + 8 * (64 // 8)

    plain = PruningRecord(dart_config=None)
    with torch.no_grad():
        out = model(ids[None], images=images, output_hidden_states=True, pruning_record=plain)
    (start, count), = plain.image_spans[0]
    cfg = parse_dart_config(settings, num_hidden_layers=model.config.num_hidden_layers)
    (kept,) = record.kept_image_positions()
    expected = dart_by_hand(out.hidden_states[0][0].double(), start, count, cfg)
    assert (kept + start).tolist() == expected  # offsets in the image


def test_other_methods_still_cannot_prune_before_layer_0(tiny_ckpt):
    from llava.model.pruning import PruningConfigError

    with pytest.raises(PruningConfigError, match="K"):
        parse_dart_config(make_dart_config(method="dart", K=0), num_hidden_layers=4)
