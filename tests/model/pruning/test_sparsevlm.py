"""SparseVLM: the official rater and top-k rules reproduced on crafted inputs by a literal loop, the stages and
counts of its schedule through a tiny LLaVA's `generate`, the first stage's set from eager attention weights,
and a ragged batch equal to single runs."""

import pytest
import torch
from test_engine import generate_batch, generate_single, scene, single_runs, strip_eos
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import PruningConfigError, SpanInputs, make_dart_config, parse_dart_config
from llava.model.pruning.sparsevlm import SCHEDULES, schedule_for, select

pytestmark = pytest.mark.usefixtures("one_thread")


def official_raters(v, t):
    """score.py / LlamaDynamicvitModel.forward, written as loops: softmax over the text of each image row of
    V @ T^T, averaged over the image rows; raters score above the mean."""
    rows = []
    for i in range(v.shape[0]):
        logits = [float(v[i] @ t[j]) for j in range(t.shape[0])]
        top = max(logits)
        exps = [pow(2.718281828459045, x - top) for x in logits]
        rows.append([e / sum(exps) for e in exps])
    scores = [sum(r[j] for r in rows) / len(rows) for j in range(t.shape[0])]
    mean = sum(scores) / len(scores)
    return [j for j, s in enumerate(scores) if s > mean]


def test_the_selection_follows_the_official_equations_on_crafted_inputs():
    torch.manual_seed(0)
    start, count, length, dim = 3, 12, 22, 8
    embeddings = torch.randn(length, dim, dtype=torch.float64)
    attention = torch.rand(length, length, dtype=torch.float64).tril()
    attention = attention / attention.sum(-1, keepdim=True)
    text = torch.arange(start + count, length)
    cfg = parse_dart_config(make_dart_config(method="sparsevlm", max_num_trunction=64), num_hidden_layers=32)
    inputs = SpanInputs((start, count), text, attention_matrix=attention, embeddings=embeddings,
                        image_embeddings=embeddings[start:start + count], original_length=count)
    raters = [int(text[j]) for j in official_raters(embeddings[start:start + count], embeddings[text])]
    assert 0 < len(raters) < text.numel()
    scores = [sum(float(attention[r, start + i]) for r in raters) / len(raters) for i in range(count)]
    # DART keeps 4 + 8 * 8 = 68 of 576 here, but of 12 tokens all: the nearest official target is 192, whose
    # 300 is cut to v - 1 = 11.
    expected = sorted(sorted(range(count), key=lambda i: -scores[i])[:count - 1])
    assert select(inputs, cfg).tolist() == [start + i for i in expected]


def test_the_budget_picks_the_nearest_official_schedule():
    assert schedule_for(68) == SCHEDULES[64] and schedule_for(132) == SCHEDULES[128]
    assert schedule_for(160) == SCHEDULES[192] and schedule_for(112) == SCHEDULES[128]  # a tie goes up
    assert schedule_for(1000) == SCHEDULES[192] and schedule_for(1) == SCHEDULES[64]


def test_layers_scale_and_bad_layers_are_named():
    assert parse_dart_config(make_dart_config(method="sparsevlm"), 32).method_settings.sparsevlm_layers == (2, 6, 15)
    assert parse_dart_config(make_dart_config(method="sparsevlm"), 4).method_settings.sparsevlm_layers == (0, 1, 2)
    with pytest.raises(PruningConfigError, match="sparsevlm_layers"):
        parse_dart_config(make_dart_config(method="sparsevlm", sparsevlm_layers=[1, 3]), 4)
    with pytest.raises(PruningConfigError, match="collide"):
        parse_dart_config(make_dart_config(method="sparsevlm"), 3)


@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu",
                                                           attn_implementation="eager")
    return tokenizer, model, processor


def test_generate_keeps_the_schedule_and_the_first_stage_ranks_by_layer_0s_rater_attention(tiny):
    tokenizer, model, processor = tiny
    assert model.config.num_hidden_layers == 4
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square in this picture?")
    images = process_images([scene(3)], processor, model.config)
    settings = make_dart_config(method="sparsevlm", max_num_trunction=128)  # DART keeps 132: target 128
    record = PruningRecord(dart_config=settings)
    generate_single(model, ids, images, record, max_new_tokens=4)
    assert [stage.layer for stage in record.stages] == [1, 2, 3]
    first = record.stages[0].keep[0]

    plain = PruningRecord(dart_config=None)
    with torch.no_grad():
        out = model(ids[None], images=images, output_attentions=True, output_hidden_states=True,
                    pruning_record=plain)
    (start, count), = plain.image_spans[0]
    embeds = out.hidden_states[0][0]
    text = torch.arange(start + count, embeds.shape[0])
    raters = text[official_raters(embeds[start:start + count].double(), embeds[text].double())]
    scores = out.attentions[0][0].mean(0)[raters][:, start:start + count].mean(0)
    expected = scores.topk(303).indices.sort().values + start
    image = first[(first >= start) & (first < start + count)]
    assert torch.equal(image, expected)
    assert [int(((s.keep[0] >= start) & (s.keep[0] < start + count)).sum()) for s in record.stages] == [303, 110, 36]
    assert record.num_kept_image_tokens() == 36


def test_a_ragged_batch_equals_single_runs(tiny):
    tokenizer, model, processor = tiny
    one = lambda img: process_images([img], processor, model.config)  # noqa: E731
    requests = [
        (vicuna_prompt(tokenizer, "<image>\nColour?"), one(scene(1))),
        (vicuna_prompt(tokenizer, "<image>\nWhat colour is the big square in the middle of this picture?"), one(scene(2))),
        (vicuna_prompt(tokenizer, "Which colour do you get when you mix red and white paint?"), None),
    ]
    settings = make_dart_config(method="sparsevlm", max_num_trunction=64)
    singles = single_runs(model, requests, settings, max_new_tokens=4)
    batch_record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, requests, batch_record, max_new_tokens=4)
    for b, (tokens, record) in enumerate(singles):
        assert strip_eos(batched[b], tokenizer.eos_token_id) == strip_eos(tokens, tokenizer.eos_token_id)
        assert batch_record.num_kept_image_tokens(b) == record.num_kept_image_tokens()
        assert all(torch.equal(a, s) for a, s in zip(batch_record.kept_image_positions(b), record.kept_image_positions()))
    assert singles[0][1].num_kept_image_tokens() == SCHEDULES[64][-1]
