"""FastV and PyramidDrop: the attention row they rank by equals eager attention's weights, their kept sets
equal ones computed by hand from those weights, sdpa and eager agree, and they batch and decode like the
engine's other methods."""

import pytest
import torch
from test_engine import (
    generate_batch,
    generate_single,
    manual_decode,
    ragged_decoding_batch,
    scene,
    single_runs,
    strip_eos,
    with_generated_tokens,
)
from test_engine import prompt as vicuna_prompt
from transformers import LlamaConfig, LlamaModel, Qwen2VLTextConfig, Qwen2VLTextModel, Qwen3Config, Qwen3Model

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.model.pruning.backends import RotaryDecoderBackend

KEPT = 4 + 8 * (64 // 8)  # what DART keeps with max_num_trunction 64; FastV is given the same budget


@pytest.fixture(scope="module")
def by_attention(tiny_ckpt):
    """The tiny LLaVA under both attention implementations, and one image question."""
    models = {attn: load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation=attn)
              for attn in ("eager", "sdpa")}
    tokenizer, model, processor, _ = models["eager"]
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    images = process_images([scene(11)], processor, model.config)
    return {attn: m[1] for attn, m in models.items()}, ids, images


def eager_attentions(model, ids, images, record=None):
    """Every layer's attention weights (B, heads, L, L) of an eager forward, and the image span."""
    record = record or PruningRecord(dart_config=None)
    with torch.no_grad():
        out = model(ids[None], images=images, output_attentions=True, pruning_record=record)
    return out.attentions, record.image_spans[0][0]


def small_text_model(family: str):
    """A randomly initialised transformers text model of a family whose attention differs from LLaMA's."""
    common = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "num_key_value_heads": 2, "attn_implementation": "eager",
              "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if family == "llama":  # grouped-query attention, no biases
        return LlamaModel(LlamaConfig(**common))
    if family == "qwen3":  # RMS norms on the queries and keys of each head, before RoPE
        return Qwen3Model(Qwen3Config(**common, head_dim=8))
    # Qwen2-VL's text model: q / k / v biases and M-RoPE over (3, B, L) positions
    return Qwen2VLTextModel(Qwen2VLTextConfig(
        **common, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}))


@pytest.mark.parametrize("family", ["llama", "qwen3", "qwen2_vl"])
def test_the_attention_row_is_the_last_row_of_eager_attention_weights(family):
    """transformers' own models under eager attention, a left-padded batch: the backend's row equals each
    layer's returned weights for the last token, averaged over heads, and its keys are the layer's own."""
    torch.manual_seed(0)
    model = small_text_model(family).eval()
    if family == "qwen3":  # random norms, so a backend skipping them would rank other tokens
        for layer in model.layers:
            torch.nn.init.uniform_(layer.self_attn.q_norm.weight, 0.2, 3.0)
            torch.nn.init.uniform_(layer.self_attn.k_norm.weight, 0.2, 3.0)
    ids = torch.randint(1, 64, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if family == "qwen2_vl":  # distinct temporal / height / width rows, as an image's tokens have
        positions = torch.stack([positions, positions * 2, positions * 3])
    with torch.no_grad():
        out = model(ids, attention_mask=mask, position_ids=positions, output_attentions=True,
                    output_hidden_states=True, use_cache=True)
        backend = RotaryDecoderBackend(model)
        for layer in range(3):
            layer_input = out.hidden_states[layer]
            embeddings = model.rotary_emb(layer_input, positions)
            keys = backend.layer_keys(layer, layer_input, embeddings, None)
            cached = out.past_key_values.layers[layer].keys.transpose(1, 2).flatten(2)
            torch.testing.assert_close(keys, cached, rtol=0, atol=1e-6)  # the keys the layer itself used
            row = backend.last_token_attention(layer, layer_input, embeddings, keys, mask.bool())
            torch.testing.assert_close(row, out.attentions[layer][:, :, -1].mean(1), rtol=0, atol=1e-6)


def test_fastv_keeps_the_image_tokens_most_attended_in_layer_k_minus_1_under_eager_and_sdpa(by_attention):
    models, ids, images = by_attention
    settings = make_dart_config(method="fastv", K=2, max_num_trunction=64)
    attentions, (start, count) = eager_attentions(models["eager"], ids, images)
    scores = attentions[1][0, :, -1, start:start + count].mean(0)  # layer K-1 = 1
    expected = scores.topk(KEPT).indices.sort().values
    answers = {}
    for attn, model in models.items():
        record = PruningRecord(dart_config=settings)
        answers[attn] = generate_single(model, ids, images, record, max_new_tokens=5)
        (kept,) = record.kept_image_positions()
        assert torch.equal(kept, expected), attn
        assert [stage.layer for stage in record.stages] == [2]
    assert answers["eager"] == answers["sdpa"]


def test_pdrop_stages_keep_the_top_fraction_by_each_stage_layers_own_attention(by_attention):
    """Stage 0 ranks by the attention of its own layer in the unpruned sequence; stage 1 by that of its layer
    in the sequence stage 0 left (rebuilt here by forcing stage 0's set), each keeping int(576 * ratio). With
    original positions, as forcing keeps them (the release's renumbering: test_pdrop_released.py)."""
    models, ids, images = by_attention
    model = models["eager"]
    settings = make_dart_config(method="pdrop", pdrop_layers=[1, 3], pdrop_ratios=[0.5, 0.25],
                                pdrop_positions="original")
    record = PruningRecord(dart_config=settings)
    generate_single(model, ids, images, record, max_new_tokens=3)
    assert [stage.layer for stage in record.stages] == [1, 3]
    first, second = (stage.keep[0] for stage in record.stages)

    attentions, (start, count) = eager_attentions(model, ids, images)
    expected_first = attentions[1][0, :, -1, start:start + count].mean(0).topk(288).indices.sort().values + start
    assert torch.equal(first[(first >= start) & (first < start + count)], expected_first)

    forced = PruningRecord(dart_config=make_dart_config(K=1), forced_keep=first)
    attentions, _ = eager_attentions(model, ids, images, forced)
    image_rows = (first >= start) & (first < start + count)  # where stage 0's image tokens sit after it
    scores = attentions[3][0, :, -1].mean(0)[image_rows]
    expected_second = first[image_rows][scores.topk(144).indices].sort().values
    assert torch.equal(second[(second >= start) & (second < start + count)], expected_second)
    assert record.num_kept_image_tokens() == 144


def test_pdrop_defaults_to_the_reference_stages_scaled_to_the_depth():
    cfg = parse_dart_config(make_dart_config(method="pdrop"), num_hidden_layers=32)
    assert (cfg.method_settings.pdrop_layers, cfg.method_settings.pdrop_ratios) == ((8, 16, 24), (0.5, 0.25, 0.125))
    cfg = parse_dart_config(make_dart_config(method="pdrop"), num_hidden_layers=4)
    assert (cfg.method_settings.pdrop_layers, cfg.method_settings.pdrop_ratios) == ((1, 2, 3), (0.5, 0.25, 0.125))
    assert "pdrop_layers" not in parse_dart_config(make_dart_config(), num_hidden_layers=4).to_dict()


@pytest.mark.parametrize("bad, message", [
    ({"pdrop_layers": [2, 1], "pdrop_ratios": [0.5, 0.25]}, r"must be ascending and distinct, in 1\.\.3"),
    ({"pdrop_layers": [1, 4], "pdrop_ratios": [0.5, 0.25]}, r"must be ascending and distinct, in 1\.\.3"),
    ({"pdrop_layers": [1, 2], "pdrop_ratios": [0.5]}, "must have one ratio per layer"),
    ({"pdrop_layers": [1, 2], "pdrop_ratios": [0.25, 0.5]}, r"must be in \(0, 1\] and non-increasing"),
    ({"pdrop_layers": [1.5], "pdrop_ratios": [0.5]}, "must be a list of ints"),
    ({"pdrop_layers": [1]}, "needs \\['pdrop_ratios'\\], one per layer"),
    ({"pdrop_ratios": [0.5, 0.25]}, "has 2 ratios but the default layers of a 4-layer model are \\[1, 2, 3\\]"),
])
def test_bad_pdrop_stages_are_named(bad, message):
    from llava.model.pruning import PruningConfigError

    with pytest.raises(PruningConfigError, match=message):
        parse_dart_config(make_dart_config(method="pdrop", **bad), num_hidden_layers=4)


@pytest.mark.parametrize("method", ["fastv", "pdrop"])
def test_a_ragged_batch_equals_single_runs(by_attention, tiny_ckpt, method):
    models, _, _ = by_attention
    model = models["sdpa"]
    tokenizer, _, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    one = lambda img: process_images([img], processor, model.config)  # noqa: E731
    requests = [
        (vicuna_prompt(tokenizer, "<image>\nColour?"), one(scene(1))),
        (vicuna_prompt(tokenizer, "<image>\nWhat colour is the big square in the middle of this picture?"), one(scene(2))),
        (vicuna_prompt(tokenizer, "Which colour do you get when you mix red and white paint?"), None),
    ]
    settings = make_dart_config(method=method, max_num_trunction=32)
    singles = single_runs(model, requests, settings, max_new_tokens=5)
    batch_record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, requests, batch_record, max_new_tokens=5)
    assert batch_record.keep_valid is not None  # ragged: the text-only row keeps more
    for b, (tokens, record) in enumerate(singles):
        assert strip_eos(batched[b], tokenizer.eos_token_id) == strip_eos(tokens, tokenizer.eos_token_id)
        assert batch_record.num_kept_image_tokens(b) == record.num_kept_image_tokens()
        assert all(torch.equal(a, s) for a, s in zip(batch_record.kept_image_positions(b), record.kept_image_positions()))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_after_fastv_equals_a_full_forward_with_its_kept_sets_forced(by_attention, tiny_ckpt, attn):
    models, _, _ = by_attention
    model = models[attn]
    tokenizer, _, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    steps = 4
    with torch.no_grad():
        spliced = ragged_decoding_batch(tokenizer, processor, model)
        record = PruningRecord(dart_config=make_dart_config(method="fastv", max_num_trunction=24))
        tokens, step_logits = manual_decode(model, spliced, record, steps)
        embeds, full_mask, positions = with_generated_tokens(model, spliced, tokens)
        forced = PruningRecord(dart_config=make_dart_config(), forced_keep=[record.kept_positions(b) for b in range(3)])
        full = model(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions,
                     image_spans=spliced.image_spans, pruning_record=forced).logits
    torch.testing.assert_close(full[:, -steps:], step_logits, rtol=0, atol=1e-4)
    assert [record.num_kept_image_tokens(b) for b in range(3)] == [4 + 8 * 3, 0, 2 * (4 + 8 * 3)]
