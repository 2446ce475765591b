"""PyramidDrop as released: after each stage the kept tokens are renumbered 0..L'-1, the next stage ranks on
those positions, and a decoding step's position loses the tokens dropped so far in each stage's layers.

The reference below is written from the release's `LlamaModel.pdrop_forward` / `pdrop_rank_drop`
(github.com/Cooperx521/PyramidDrop, llava/model/modeling_llama_pdrop.py), as an eager loop over the tiny
model's own decoder layers and rotary embedding, without the pruning engine."""

import math

import pytest
import torch
from test_engine import scene
from test_engine import prompt as vicuna_prompt
from transformers import DynamicCache
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import PruningConfigError, make_dart_config, parse_dart_config

LAYERS, RATIOS = [1, 2, 3], [0.5, 0.25, 0.125]
STEPS = 4


@pytest.fixture(scope="module")
def loaded(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu",
                                                           attn_implementation="eager")
    return tokenizer, model, processor


@pytest.fixture(scope="module")
def tiny(loaded):
    tokenizer, model, processor = loaded
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square in the picture?")
    images = process_images([scene(11)], processor, model.config)
    return model, ids, images


def released_scores(attn, rotary, normed, positions, start, current):
    """pdrop_rank_drop's ranking: the last prompt token's query against every key, RoPE at the current
    positions, softmax in float32 cast back, mean over heads, the image's columns."""
    batch, length, _ = normed.shape
    query = attn.q_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    key = attn.k_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    cos, sin = rotary(normed, positions)
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    weights = query[0, :, -1:] @ key[0].transpose(1, 2) / math.sqrt(attn.head_dim)  # the last row: all visible
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return weights.mean(0)[:, start:start + current].mean(0)


def causal(length, dtype):
    mask = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype).triu(1)
    return mask[None, None]


def released(model, embeds, span, layer_list, ratios, steps):
    """The release's prefill and greedy cached decoding: kept absolute positions per stage, logits per step."""
    lm = model.get_model()
    ratios = [1.0, *ratios]  # as its loaders do: image_token_ratio_list.insert(0, 1.0)
    start, n_image = span
    hidden, absolute = embeds, torch.arange(embeds.shape[1])
    positions = absolute[None]
    cache = DynamicCache(config=lm.config)
    kept_sets = []
    for idx, layer in enumerate(lm.layers):
        if idx in layer_list:  # rank_layer = layer_idx + 1 of the loop: after layer idx - 1, with layer idx
            stage = layer_list.index(idx)
            current, keep = int(n_image * ratios[stage]), int(n_image * ratios[stage + 1])
            scores = released_scores(layer.self_attn, lm.rotary_emb, layer.input_layernorm(hidden), positions, start, current)
            top = (scores.topk(keep).indices + start).sort().values
            index = torch.cat([torch.arange(start), top, torch.arange(start + current, hidden.shape[1])])
            hidden, absolute = hidden[:, index], absolute[index]
            kept_sets.append(absolute)
            positions = torch.arange(hidden.shape[1])[None]  # position_ids[i, :cur_len] = arange(cur_len)
        hidden = layer(hidden, attention_mask=causal(hidden.shape[1], hidden.dtype),
                       position_embeddings=lm.rotary_emb(hidden, positions), past_key_values=cache, use_cache=True)
    logits = [model.lm_head(lm.norm(hidden))[:, -1]]
    for step in range(1, steps):
        hidden = lm.embed_tokens(logits[-1].argmax(-1))[:, None]
        original = torch.tensor([[embeds.shape[1] + step - 1]])  # generate's cumsum position
        for idx, layer in enumerate(lm.layers):
            if idx in layer_list:  # position_ids - (cur_visual_length - next_visual_length)
                stage = layer_list.index(idx)
                original = original - (int(n_image * ratios[stage]) - int(n_image * ratios[stage + 1]))
            hidden = layer(hidden, attention_mask=None, position_embeddings=lm.rotary_emb(hidden, original),
                           past_key_values=cache, use_cache=True)
        logits.append(model.lm_head(lm.norm(hidden))[:, -1])
    return kept_sets, torch.stack(logits, 1)


def ours(model, ids, images, **settings):
    record = PruningRecord(dart_config=make_dart_config(method="pdrop", **settings))
    with torch.no_grad():
        out = model.generate(ids[None], images=images, pruning_record=record, do_sample=False, max_new_tokens=STEPS,
                             min_new_tokens=STEPS, return_dict_in_generate=True, output_logits=True)
    return record, torch.stack(out.logits, 1)


def test_renumbered_pdrop_keeps_and_decodes_as_the_release(tiny):
    model, ids, images = tiny
    record, logits = ours(model, ids, images, pdrop_layers=LAYERS, pdrop_ratios=RATIOS)
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(ids[None], images)
        (span,) = spliced.image_spans[0]
        kept_sets, expected = released(model, spliced.inputs_embeds, span, LAYERS, RATIOS, STEPS)
    assert [stage.layer for stage in record.stages] == LAYERS
    for stage, kept in zip(record.stages, kept_sets):
        assert torch.equal(stage.keep[0], kept), stage.layer
    assert record.num_kept_image_tokens() == int(576 * RATIOS[-1])
    assert [int(stage.position_shift[0]) for stage in record.stages] == [576 - int(576 * r) for r in RATIOS]
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)


def test_original_positions_rank_other_tokens_from_the_second_stage(tiny):
    model, ids, images = tiny
    renumbered, _ = ours(model, ids, images, pdrop_layers=LAYERS, pdrop_ratios=RATIOS)
    original, _ = ours(model, ids, images, pdrop_layers=LAYERS, pdrop_ratios=RATIOS, pdrop_positions="original")
    assert torch.equal(renumbered.stages[0].keep, original.stages[0].keep)  # stage 1 ranks unpruned positions
    assert not torch.equal(renumbered.stages[1].keep, original.stages[1].keep)
    assert all(stage.position_shift is None for stage in original.stages)


def test_the_positions_setting_is_checked_and_written_only_when_given():
    cfg = parse_dart_config(make_dart_config(method="pdrop"), num_hidden_layers=4)
    assert cfg.method_settings.renumbers_positions and "pdrop_positions" not in cfg.to_dict()
    cfg = parse_dart_config(make_dart_config(method="pdrop", pdrop_positions="original"), num_hidden_layers=4)
    assert not cfg.method_settings.renumbers_positions and cfg.to_dict()["pdrop_positions"] == "original"
    with pytest.raises(PruningConfigError, match=r"pdrop_positions.*'renumbered', 'original'"):
        parse_dart_config(make_dart_config(method="pdrop", pdrop_positions="shifted"), num_hidden_layers=4)


def test_m_rope_keeps_original_positions_and_says_so_once(monkeypatch, caplog):
    """Qwen-VL's M-RoPE has no renumbering rule in the release: pdrop keeps the original positions there (the
    kept sets of `pdrop_positions="original"`), with one warning."""
    from transformers import Qwen2VLTextConfig, Qwen2VLTextModel

    from llava.model.pruning import engine
    from llava.model.pruning.attach import attach_engine
    from llava.model.pruning.backends import QwenVLBackend

    torch.manual_seed(0)
    config = Qwen2VLTextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=2, attn_implementation="eager",
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]})
    model = Qwen2VLTextModel(config).eval()
    attach_engine(model, lambda: QwenVLBackend(model))
    monkeypatch.setattr(engine, "_reported", set())
    embeds = torch.randn(1, 40, 32)
    grid = torch.arange(40)
    positions = torch.stack([grid, grid * 2 % 7, grid * 3 % 5])[:, None]  # (3, 1, L): distinct t / h / w rows
    kept = {}
    for mode in ("renumbered", "original"):
        record = PruningRecord(dart_config=make_dart_config(method="pdrop", pdrop_layers=[1, 2],
                                                            pdrop_ratios=[0.5, 0.25], pdrop_positions=mode))
        with torch.no_grad(), caplog.at_level("WARNING", logger=engine.__name__):
            model(inputs_embeds=embeds, position_ids=positions, image_spans=[[(4, 32)]], pruning_record=record)
        assert all(stage.position_shift is None for stage in record.stages)
        kept[mode] = [stage.keep for stage in record.stages]
    assert all(torch.equal(a, b) for a, b in zip(kept["renumbered"], kept["original"]))
    warnings = [r.getMessage() for r in caplog.records if "renumbers the kept tokens' positions" in r.getMessage()]
    assert len(warnings) == 1 and "QwenVLBackend" in warnings[0]



def test_a_ragged_batch_decodes_like_single_runs(loaded):
    """Left padding and rows dropping different counts (one image, none, two): each row is renumbered from its
    own first token and its decoding positions lose its own dropped count."""
    from test_engine import decode_ragged_batch_and_singles

    tokenizer, model, processor = loaded
    settings = make_dart_config(method="pdrop", pdrop_layers=LAYERS, pdrop_ratios=RATIOS)
    batch, singles = decode_ragged_batch_and_singles(model, tokenizer, processor, settings, STEPS)
    for b, single in enumerate(singles):
        if single is not None:
            assert int(batch.stages[-1].position_shift[b]) == int(single.stages[-1].position_shift[0])
            assert all(torch.equal(x, y) for x, y in zip(batch.kept_image_positions(b), single.kept_image_positions()))
    assert batch.keep_valid is not None
