"""The pruning engine: ragged batches equal single runs, cached decoding after a ragged prefill equals a full
forward with the same kept sets, several images pruned per span, and a second backend driving the engine."""


import pytest
import torch
from PIL import Image
from transformers import LlamaConfig, LlamaModel
from transformers.models.llama import modeling_llama

from llava.constants import IMAGE_TOKEN_INDEX
from llava.conversation import conv_templates
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import PruningInput, PruningMethod, make_dart_config, parse_dart_config, register_method
from llava.model.pruning.attach import attach_engine
from llava.model.pruning.dart import select_image_tokens
from llava.model.pruning.engine import gather_tokens, pad_rows_left
from llava.model.tiny_checkpoint import build_tiny_checkpoint


def prompt(tokenizer, text):
    conv = conv_templates["vicuna_v1"].copy()
    conv.append_message(conv.roles[0], text)
    conv.append_message(conv.roles[1], None)
    return tokenizer_image_token(conv.get_prompt(), tokenizer, return_tensors="pt")


def left_pad(rows, pad_id=0):
    longest = max(r.numel() for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, r in enumerate(rows):
        ids[b, longest - r.numel():] = r
        mask[b, longest - r.numel():] = 1
    return ids, mask


def scene(seed, size=(336, 336)):
    """A noisy image with a brighter square. Every patch differs: padding a batch changes hidden states by
    float noise (~1e-7), which can swap two candidates whose similarities tie that closely, as with flat
    image regions; distinct patches keep the comparison with single runs exact."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(size[1], size[0], 3, generator=g) * 90
    pixels[size[1] // 4: size[1] // 2, size[0] // 3: size[0] // 2] += torch.tensor([150.0, 20.0 * (seed % 5), 60.0])
    return Image.fromarray(pixels.clamp(0, 255).to(torch.uint8).numpy())


@pytest.fixture(scope="module")
def llava15(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation="sdpa")
    return tokenizer, model, processor


@pytest.fixture(scope="module")
def mixed_requests(llava15):
    """Four prompts of different lengths keeping different counts: one image, one image with a long question,
    no image, two images."""
    tokenizer, model, processor = llava15
    one = lambda img: process_images([img], processor, model.config)  # noqa: E731
    return [
        (prompt(tokenizer, "<image>\nColour?"), one(scene(1))),
        (prompt(tokenizer, "<image>\nWhat colour is the big square in the middle of this picture?"), one(scene(2))),
        (prompt(tokenizer, "Which colour do you get when you mix red and white paint together?"), None),
        (prompt(tokenizer, "<image>\n<image>\nAre these the same?"), process_images([scene(3), scene(4)], processor, model.config)),
    ]


def generate_single(model, ids, images, record, **kwargs):
    with torch.no_grad():
        return model.generate(ids[None], images=images, pruning_record=record, do_sample=False, **kwargs)[0].tolist()


def single_runs(model, requests, settings, **kwargs):
    """[(tokens, record)] of each request run alone with `settings`."""
    runs = []
    for ids, images in requests:
        record = PruningRecord(dart_config=settings)
        runs.append((generate_single(model, ids, images, record, **kwargs), record))
    return runs


def generate_batch(model, requests, record, **kwargs):
    ids, mask = left_pad([ids for ids, _ in requests])
    images = [img for _, imgs in requests if imgs is not None for img in imgs]
    with torch.no_grad():
        out = model.generate(ids, images=torch.stack(images), attention_mask=mask, pruning_record=record,
                             do_sample=False, **kwargs)
    return out.tolist()


def strip_eos(tokens, eos):
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def expected_rows(model, spliced, cfg):
    """Each row's kept positions by docs/DART.md, from an unpruned forward over the same (padded) batch: its
    text without padding, plus DART per image with text pivots among the text after that image."""
    with torch.no_grad():
        plain = model(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask.long(),
                      position_ids=spliced.position_ids, use_cache=True, output_hidden_states=True,
                      pruning_record=PruningRecord(dart_config=None))
    llava_next = model.config.image_aspect_ratio == "anyres"
    normed = model.get_model().norm(plain.hidden_states[cfg.K])
    keys = plain.past_key_values.layers[cfg.K - 1].keys.transpose(1, 2).flatten(2)
    rows = []
    for b, spans in enumerate(spliced.image_spans):
        text = spliced.attention_mask[b].clone()
        for start, count in spans:
            text[start: start + count] = False
        kept = [text.nonzero().flatten()]
        padding = int(spliced.attention_mask[b].long().argmax())
        for start, count in spans:
            after = text[start + count:].nonzero().flatten() + start + count
            kept.append(select_image_tokens(normed[b], keys[b], (start, count), cfg, llava_next, after, padding))
        rows.append(torch.cat(kept).sort().values)
    return rows


def test_mixed_batch_equals_single_runs_tokens_and_kept_sets(llava15, mixed_requests):
    tokenizer, model, _ = llava15
    settings = make_dart_config(max_num_trunction=32)
    singles = single_runs(model, mixed_requests, settings, max_new_tokens=6)
    batch_record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, mixed_requests, batch_record, max_new_tokens=6)

    kept_counts = [batch_record.kept_positions(b).numel() for b in range(4)]
    assert len(set(kept_counts)) == 4, kept_counts  # really ragged
    assert batch_record.keep_valid is not None and batch_record.keep.shape[1] == max(kept_counts)
    ids, mask = left_pad([ids for ids, _ in mixed_requests])
    images = torch.cat([imgs for _, imgs in mixed_requests if imgs is not None])
    spliced = model.prepare_multimodal_inputs(ids, images, mask, padding_side="left")
    expected = expected_rows(model, spliced, parse_dart_config(settings))
    for b, (tokens, record) in enumerate(singles):
        assert strip_eos(batched[b], tokenizer.eos_token_id) == strip_eos(tokens, tokenizer.eos_token_id)
        assert torch.equal(batch_record.kept_positions(b), expected[b])
        # Left padding shifts a row's positions; DART visits its pivots in the order the row has alone.
        offset = batch_record.prefill_length - record.prefill_length
        single = record.kept_positions(0) if record.pruned else torch.arange(record.prefill_length)
        assert torch.equal(batch_record.kept_positions(b) - offset, single)
    assert [r.num_kept_image_tokens() for _, r in singles] == [4 + 32, 4 + 32, 0, 2 * (4 + 32)]


def test_a_ragged_batch_without_padding_keeps_exactly_the_single_runs_sets(llava15, mixed_requests):
    """Rows of equal length, one with an image and one without: ragged kept counts, no padding, so the
    hidden states and the kept sets are bit for bit those of single runs."""
    tokenizer, model, _ = llava15
    ids, images = mixed_requests[1]
    at = int((ids == IMAGE_TOKEN_INDEX).nonzero())
    text_only = torch.cat([ids[:at], torch.full((576,), int(ids[at + 2])), ids[at + 1:]])
    requests = [(ids, images), (text_only, None)]
    settings = make_dart_config(max_num_trunction=24)
    singles = [PruningRecord(dart_config=settings) for _ in requests]
    tokens = [generate_single(model, i, img, r, max_new_tokens=5) for (i, img), r in zip(requests, singles)]
    record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, requests, record, max_new_tokens=5)
    assert record.keep_valid is not None and not record.keep_valid[0].all()
    assert torch.equal(record.kept_positions(0), singles[0].kept_positions(0))
    assert torch.equal(record.kept_positions(1), torch.arange(text_only.numel()))
    assert [strip_eos(t, tokenizer.eos_token_id) for t in batched] == [strip_eos(t, tokenizer.eos_token_id) for t in tokens]


def test_beam_search_and_several_sequences_on_a_ragged_batch(llava15, mixed_requests):
    _, model, _ = llava15
    settings = make_dart_config(max_num_trunction=16)
    requests = mixed_requests[1:]  # the lengths differ, so do the kept counts
    kwargs = dict(num_beams=2, num_return_sequences=2, max_new_tokens=4, min_new_tokens=4)
    ids, mask = left_pad([ids for ids, _ in requests])
    images = torch.cat([imgs for _, imgs in requests if imgs is not None])
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        out = model.generate(ids, images=images, attention_mask=mask, pruning_record=record, **kwargs)
    assert record.keep.shape[0] == 3 * 2 and record.keep_valid is not None  # one row per beam, ragged
    for b in range(3):
        with torch.no_grad():
            single = model.generate(requests[b][0][None], images=requests[b][1], **kwargs,
                                    pruning_record=PruningRecord(dart_config=settings))
        # The best beam; the runner-up of a random tiny model can tie with a third within float noise.
        assert out.shape[0] == 6 and out[2 * b].tolist() == single[0].tolist()


def manual_decode(model, spliced, record, steps):
    """Greedy decoding with the cache from a (left-padded) spliced batch: tokens (B, steps), logits (B, steps, V)."""
    mask = spliced.attention_mask.long()
    out = model(inputs_embeds=spliced.inputs_embeds, attention_mask=mask, position_ids=spliced.position_ids,
                image_spans=spliced.image_spans, pruning_record=record, use_cache=True)
    cache, logits = out.past_key_values, [out.logits[:, -1]]
    tokens = [out.logits[:, -1].argmax(-1)]
    positions = spliced.position_ids[:, -1:]
    for _ in range(steps - 1):
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions + 1
        out = model(input_ids=tokens[-1][:, None], attention_mask=mask, position_ids=positions, past_key_values=cache,
                    pruning_record=record, use_cache=True)
        logits.append(out.logits[:, -1])
        tokens.append(out.logits[:, -1].argmax(-1))
    return torch.stack(tokens, 1), torch.stack(logits, 1)


def decode_ragged_batch_and_singles(model, tokenizer, processor, settings, steps):
    """Three left-padded prompts (one image, no image, two images) decoded together and each alone with
    `manual_decode`; each row's logits must be its single run's (1e-4). Returns the batch's record and, per row,
    the single run's record (None for the row without an image)."""
    prompts = [prompt(tokenizer, "<image>\nColour?"), prompt(tokenizer, "Is a circle round? One word."),
               prompt(tokenizer, "<image>\n<image>\nWhich of the two pictures is brighter?")]
    pictures = [[scene(5)], [], [scene(6), scene(7)]]
    with torch.no_grad():
        ids, mask = left_pad(prompts)
        images = process_images([p for row in pictures for p in row], processor, model.config)
        batch = PruningRecord(dart_config=settings)
        _, batch_logits = manual_decode(model, model.prepare_multimodal_inputs(ids, images, mask, padding_side="left"),
                                        batch, steps)
        singles = []
        for b, (row_ids, row_pictures) in enumerate(zip(prompts, pictures)):
            row_images = process_images(row_pictures, processor, model.config) if row_pictures else images[:0]
            single = PruningRecord(dart_config=settings)
            spliced = model.prepare_multimodal_inputs(row_ids[None], row_images, padding_side="left")
            _, logits = manual_decode(model, spliced, single, steps)
            torch.testing.assert_close(batch_logits[b], logits[0], rtol=0, atol=1e-4)
            singles.append(single if row_pictures else None)
    return batch, singles


def ragged_decoding_batch(tokenizer, processor, model):
    """Three left-padded prompts, spliced: one image, no image, two images."""
    prompts = [prompt(tokenizer, "<image>\nColour?"), prompt(tokenizer, "Is a circle round? Answer with a word."),
               prompt(tokenizer, "<image>\n<image>\nWhich of the two pictures is brighter, the first or the second?")]
    ids, mask = left_pad(prompts)
    images = process_images([scene(5), scene(6), scene(7)], processor, model.config)
    return model.prepare_multimodal_inputs(ids, images, mask, padding_side="left")


def with_generated_tokens(model, spliced, tokens):
    """Embeddings, mask and positions of the spliced prompts followed by all generated tokens but the last."""
    generated = model.get_model().embed_tokens(tokens[:, :-1])
    embeds = torch.cat([spliced.inputs_embeds, generated], dim=1)
    mask = torch.cat([spliced.attention_mask.long(), torch.ones_like(tokens[:, :-1])], dim=1)
    steps = tokens.shape[1]
    positions = torch.cat([spliced.position_ids, spliced.position_ids[:, -1:] + torch.arange(1, steps)], dim=1)
    return embeds, mask, positions


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_after_a_ragged_prefill_equals_a_full_forward_with_the_kept_sets_forced(tiny_ckpt, attn):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation=attn)
    model.config.DART_config = make_dart_config(max_num_trunction=24)
    steps = 5
    with torch.no_grad():
        spliced = ragged_decoding_batch(tokenizer, processor, model)
        record = PruningRecord()
        tokens, step_logits = manual_decode(model, spliced, record, steps)
        assert record.keep_valid is not None
        # One forward over prompt + generated tokens, no cache, with each row's prefill kept set forced.
        embeds, full_mask, positions = with_generated_tokens(model, spliced, tokens)
        forced = PruningRecord(forced_keep=[record.kept_positions(b) for b in range(3)])
        full = model(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions,
                     image_spans=spliced.image_spans, pruning_record=forced).logits
    torch.testing.assert_close(full[:, -steps:], step_logits, rtol=0, atol=1e-4)
    # The cache of layers >= K holds the longest kept row, and the prefill's padding stays masked there.
    assert [forced.kept_positions(b).numel() for b in range(3)] == [
        record.kept_positions(b).numel() + steps - 1 for b in range(3)
    ]


def test_llava_next_images_of_different_aspect_ratios_batch_like_single_runs(tmp_path, to_llava_next):
    path = to_llava_next(build_tiny_checkpoint(tmp_path / "next", seed=3))
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    settings = make_dart_config(retain_token_num_for_llava_next=48)
    images = [scene(1, (800, 300)), scene(2, (300, 700)), scene(3, (700, 330))]  # fit in 2048 tokens
    texts = ["<image>\nColour?", "<image>\nWhat is the colour of the square?", "<image>\nShape?"]
    requests = [(prompt(tokenizer, t), process_images([img], processor, model.config), img.size) for t, img in zip(texts, images)]
    singles = []
    for ids, pixels, size in requests:
        record = PruningRecord(dart_config=settings)
        with torch.no_grad():
            tokens = model.generate(ids[None], images=pixels, image_sizes=[size], pruning_record=record,
                                    max_new_tokens=4, min_new_tokens=4, do_sample=False)
        singles.append((tokens[0].tolist(), record))
    ids, mask = left_pad([ids for ids, _, _ in requests])
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        batched = model.generate(ids, images=[p[0] for _, p, _ in requests], image_sizes=[s for _, _, s in requests],
                                 attention_mask=mask, pruning_record=record, max_new_tokens=4, min_new_tokens=4,
                                 do_sample=False)
    spliced = model.prepare_multimodal_inputs(ids, [p[0] for _, p, _ in requests], mask, padding_side="left",
                                              image_sizes=[s for _, _, s in requests])
    expected = expected_rows(model, spliced, parse_dart_config(settings))
    spans = [r.image_spans[0][0][1] for _, r in singles]
    assert len(set(spans)) == 3  # three different image token counts
    for b, (tokens, single) in enumerate(singles):
        assert batched[b].tolist() == tokens
        assert record.num_kept_image_tokens(b) == single.num_kept_image_tokens() == 4 + 8 * 6  # T = 48 // 8
        assert torch.equal(record.kept_positions(b), expected[b])


def test_two_images_in_one_prompt_are_pruned_per_span(llava15):
    tokenizer, model, processor = llava15
    ids = prompt(tokenizer, "<image>\nand\n<image>\nSame colour?")[None]
    images = process_images([scene(8), scene(9)], processor, model.config)
    cfg = parse_dart_config(make_dart_config(max_num_trunction=40))
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(ids, images)
        plain = model(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans, use_cache=True,
                      output_hidden_states=True, pruning_record=PruningRecord(dart_config=None))
        record = PruningRecord(dart_config=cfg)
        model(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans, pruning_record=record)
    (s1, m1), (s2, m2) = spliced.image_spans[0]
    length = spliced.inputs_embeds.shape[1]
    # Expected from the unpruned run: layer K-1's output through the final norm, its cached post-RoPE keys.
    normed = model.get_model().norm(plain.hidden_states[cfg.K])[0]
    keys = plain.past_key_values.layers[cfg.K - 1].keys[0].transpose(0, 1).flatten(1)
    text_after_first = torch.cat([torch.arange(s1 + m1, s2), torch.arange(s2 + m2, length)])  # not image 2's tokens
    first = select_image_tokens(normed, keys, (s1, m1), cfg, text_positions=text_after_first)
    second = select_image_tokens(normed, keys, (s2, m2), cfg)
    kept_first, kept_second = record.kept_image_positions(0)
    assert torch.equal(kept_first, first - s1) and torch.equal(kept_second, second - s2)
    assert kept_first.numel() == kept_second.numel() == 4 + 8 * 5
    text = [p for p in range(length) if not (s1 <= p < s1 + m1 or s2 <= p < s2 + m2)]
    assert torch.equal(record.kept_positions(0), torch.cat([torch.tensor(text), first, second]).sort().values)


# -- the engine driven by a second, minimal backend ---------------------------------------------------------


class EagerMaskBackend:
    """The backend operations for a plain transformers LlamaModel: keys always recomputed from the layer input,
    the mask built by hand as an additive float mask (no transformers masking utilities)."""

    llava_next = False

    def __init__(self, model, settings):
        self.model, self.config, self.settings = model, model.config, settings

    def default_settings(self):
        return self.settings

    def adapt_settings(self, settings):
        return settings

    def final_norm(self, hidden_states):
        return self.model.norm(hidden_states)

    def layer_keys(self, layer_idx, layer_input, position_embeddings, cache):
        attn = self.model.layers[layer_idx].self_attn
        x = self.model.layers[layer_idx].input_layernorm(layer_input)
        keys = attn.k_proj(x).view(*x.shape[:2], -1, attn.head_dim).transpose(1, 2)
        _, keys = modeling_llama.apply_rotary_pos_emb(keys, keys, *position_embeddings)
        return keys.transpose(1, 2).flatten(2)

    def causal_mask(self, hidden_states, attention_mask, cache, layer_idx):
        batch, length = hidden_states.shape[:2]
        allowed = torch.ones(length, length, dtype=torch.bool).tril().expand(batch, -1, -1)
        if attention_mask is not None:
            allowed = allowed & attention_mask.bool()[:, None, :]
        return torch.zeros(batch, 1, length, length).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)


def test_a_second_backend_on_a_plain_llama_model_prunes_like_llava(llava15):
    tokenizer, model, processor = llava15
    cfg = model.config
    # The library's LlamaModel, its forward untouched: attaching the engine with a backend is all a family needs.
    plain = LlamaModel(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=cfg.rope_parameters, attn_implementation="eager",
    )).eval()
    state = {k.removeprefix("model."): v for k, v in model.state_dict().items() if k.startswith("model.")}
    plain.load_state_dict({k: v for k, v in state.items() if k in plain.state_dict()}, strict=True)
    settings = make_dart_config(max_num_trunction=48)
    attach_engine(plain, lambda: EagerMaskBackend(plain, settings))
    ids = prompt(tokenizer, "<image>\nWhat colour is the square?")[None]
    with torch.no_grad():
        spliced = model.prepare_multimodal_inputs(ids, process_images([scene(10)], processor, model.config))
        ours, theirs = PruningRecord(dart_config=settings), PruningRecord()
        expected = model.get_model()(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans,
                                     pruning_record=ours).last_hidden_state
        got = plain(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans,
                    pruning_record=theirs).last_hidden_state
    assert torch.equal(theirs.keep, ours.keep) and ours.num_kept_image_tokens() == 4 + 48
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


# -- bookkeeping helpers, by hand ------------------------------------------------------------------------


def test_ragged_rows_are_left_padded_with_a_real_index_and_masked():
    keep, valid = pad_rows_left([torch.tensor([0, 2, 5]), torch.tensor([1, 4]), torch.tensor([3])])
    assert keep.tolist() == [[0, 2, 5], [1, 1, 4], [3, 3, 3]]
    assert valid.tolist() == [[True, True, True], [False, True, True], [False, False, True]]
    same, none = pad_rows_left([torch.tensor([0, 1]), torch.tensor([2, 3])])
    assert same.tolist() == [[0, 1], [2, 3]] and none is None


def test_position_embeddings_are_gathered_per_row_from_a_shared_or_per_row_layout():
    keep = torch.tensor([[0, 2], [1, 3]])
    shared = (torch.arange(4.0)[None, :, None] + torch.tensor([0.0, 0.5])).contiguous()  # (1, L, 2), as LLaMA's cos
    assert gather_tokens(shared, keep).tolist() == [[[0, 0.5], [2, 2.5]], [[1, 1.5], [3, 3.5]]]
    per_row = torch.stack([torch.arange(4.0), torch.arange(4.0) * 10])[..., None]  # (B, L, 1), as Qwen's
    assert gather_tokens(per_row, keep).tolist() == [[[0], [2]], [[10], [30]]]


# -- methods that prune at several layers ---------------------------------------------------------------


def every_other_then_first_half(inputs, cfg):
    """Position-only (content-free) two-stage selection: stage 0 keeps the even offsets of the image, stage 1
    the first half of what is left. The same tokens whatever the text, so a full forward over prompt +
    generated tokens selects exactly what the prefill did."""
    start, count = inputs.span
    offsets = torch.arange(0, count, 2) if inputs.stage == 0 else torch.arange((count + 1) // 2)
    return offsets + start


def larger_half_by_key_norm(inputs, cfg):
    """Content-based two-stage selection: the half of the image's remaining tokens with the largest key norm
    at the layer before each stage."""
    start, count = inputs.span
    norms = inputs.keys[start : start + count].norm(dim=-1)
    return (norms.topk((count + 1) // 2).indices + start).sort().values


POSITIONAL = PruningMethod("test-two-stage-positions", every_other_then_first_half, frozenset(),
                           layers=lambda cfg: (1, 3))
BY_KEY_NORM = PruningMethod("test-two-stage-key-norm", larger_half_by_key_norm, frozenset({PruningInput.KEYS}),
                            layers=lambda cfg: (1, 2))
BACKWARDS = PruningMethod("test-unordered-layers", every_other_then_first_half, frozenset(), layers=lambda cfg: (3, 1))


@pytest.fixture(scope="module", autouse=True)
def test_methods_registered():
    """This module's methods, registered while its tests run only (the other modules see the shipped methods)."""
    from llava.model.pruning import methods as registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "_METHODS", dict(registry._METHODS))
        for method in (POSITIONAL, BY_KEY_NORM, BACKWARDS):
            register_method(method)
        yield


def test_each_stage_prunes_what_the_one_before_kept_and_the_caches_follow(llava15, mixed_requests):
    _, model, _ = llava15
    ids, images = mixed_requests[0]
    record = PruningRecord(dart_config=make_dart_config(method=POSITIONAL.name))
    with torch.no_grad():
        out = model(ids[None], images=images, pruning_record=record, use_cache=True)
    (start, count), = record.image_spans[0]
    first, second = record.stages
    assert (first.layer, second.layer) == (1, 3) and record.layer == 1
    length = record.prefill_length
    text = torch.cat([torch.arange(start), torch.arange(start + count, length)])
    expected_first = torch.cat([text, torch.arange(start, start + count, 2)]).sort().values
    expected_second = torch.cat([text, torch.arange(start, start + count, 2)[:144]]).sort().values
    assert torch.equal(first.keep[0], expected_first) and torch.equal(second.keep[0], expected_second)
    assert torch.equal(record.keep, second.keep) and record.num_kept_image_tokens() == 144
    cache = out.past_key_values
    assert [cache.get_seq_length(i) for i in range(4)] == [length, expected_first.numel(), expected_first.numel(),
                                                          expected_second.numel()]


def test_a_two_stage_method_on_a_ragged_batch_equals_single_runs(llava15, mixed_requests):
    tokenizer, model, _ = llava15
    settings = make_dart_config(method=BY_KEY_NORM.name)
    singles = []
    for ids, images in mixed_requests:
        record = PruningRecord(dart_config=settings)
        singles.append((generate_single(model, ids, images, record, max_new_tokens=5), record))
    batch_record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, mixed_requests, batch_record, max_new_tokens=5)
    assert [batch_record.num_kept_image_tokens(b) for b in range(4)] == [144, 144, 0, 288]
    assert batch_record.keep_valid is not None
    for b, (tokens, record) in enumerate(singles):
        assert strip_eos(batched[b], tokenizer.eos_token_id) == strip_eos(tokens, tokenizer.eos_token_id)
        if record.pruned:
            offset = batch_record.prefill_length - record.prefill_length
            assert torch.equal(batch_record.kept_positions(b) - offset, record.kept_positions(0))
    # Every stage keeps a subset of the stage before, per row.
    first, second = batch_record.stages
    for b in range(4):
        real = lambda stage: set(stage.keep[b][stage.keep_valid[b]].tolist())  # noqa: E731
        assert real(second) < real(first) or not batch_record.image_spans[b]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_after_a_two_stage_ragged_prefill_equals_a_full_forward(tiny_ckpt, attn):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation=attn)
    model.config.DART_config = make_dart_config(method=POSITIONAL.name)
    steps = 5
    with torch.no_grad():
        spliced = ragged_decoding_batch(tokenizer, processor, model)
        record = PruningRecord()
        tokens, step_logits = manual_decode(model, spliced, record, steps)
        # No cache: the content-free method selects the same tokens again, the generated ones are text.
        embeds, full_mask, positions = with_generated_tokens(model, spliced, tokens)
        full = model(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions,
                     image_spans=spliced.image_spans, pruning_record=PruningRecord()).logits
    assert [record.num_kept_image_tokens(b) for b in range(3)] == [144, 0, 288]
    torch.testing.assert_close(full[:, -steps:], step_logits, rtol=0, atol=1e-4)


def test_a_method_asking_for_impossible_layers_is_a_clear_error(llava15, mixed_requests):
    _, model, _ = llava15
    ids, images = mixed_requests[0]
    with pytest.raises(ValueError, match=r"asks for layers \(3, 1\); they must be ascending"):
        model(ids[None], images=images, pruning_record=PruningRecord(dart_config=make_dart_config(method=BACKWARDS.name)))
