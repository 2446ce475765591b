"""The LLaVA model with the pruning hook, checked against transformers' own Llama and against full forwards."""

import logging
import threading

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llava.constants import IMAGE_TOKEN_INDEX
from llava.conversation import conv_templates
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model import USE_MODEL_CONFIG, PruningRecord
from llava.model.pruning import engine
from llava.model.builder import load_pretrained_model
from llava.model.pruning import DARTConfig, PruningConfigError, make_dart_config, parse_dart_config


def load(ckpt, attn="eager"):
    tokenizer, model, processor, _ = load_pretrained_model(str(ckpt), None, device="cpu", attn_implementation=attn)
    return tokenizer, model, processor


def prompt_ids(tokenizer, question="What colour is the square?"):
    conv = conv_templates["vicuna_v1"].copy()
    conv.append_message(conv.roles[0], "<image>\n" + question)
    conv.append_message(conv.roles[1], None)
    return tokenizer_image_token(conv.get_prompt(), tokenizer, return_tensors="pt").unsqueeze(0)


def left_padded_pair(tokenizer, processor, model, image):
    """A short and a long prompt with one image each, and the two as one left-padded batch (ids, mask)."""
    short, long = prompt_ids(tokenizer, "Colour?"), prompt_ids(tokenizer, "What colour is the big square in the image?")
    images = process_images([image, image.transpose(0)], processor, model.config)
    pad = long.shape[1] - short.shape[1]
    batch_ids = torch.cat([torch.cat([torch.zeros(1, pad, dtype=torch.long), short], 1), long])
    mask = torch.ones_like(batch_ids)
    mask[0, :pad] = 0
    return short, long, images, batch_ids, mask


@pytest.fixture(scope="module")
def eager(tiny_ckpt):
    return load(tiny_ckpt, "eager")


@pytest.fixture(scope="module")
def inputs(eager, tiny_image):
    tokenizer, model, processor = eager
    return prompt_ids(tokenizer), process_images([tiny_image], processor, model.config)


def set_dart(model, **kw):
    model.config.DART_config = make_dart_config(**kw) if kw.get("enabled", True) else None


@pytest.fixture(autouse=True)
def no_pruning_by_default(eager):
    eager[1].config.DART_config = None
    yield
    eager[1].config.DART_config = None


def test_unpruned_logits_equal_transformers_llama(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    spliced = model.prepare_multimodal_inputs(ids, images)
    assert spliced.image_spans == [[(int((ids[0] == IMAGE_TOKEN_INDEX).nonzero()), 576)]]
    cfg = model.config
    reference = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
            max_position_embeddings=cfg.max_position_embeddings, rope_parameters=cfg.rope_parameters,
            attn_implementation="eager",
        )
    ).eval()
    state = {k: v for k, v in model.state_dict().items() if "mm_projector" not in k and "vision_tower" not in k}
    reference.load_state_dict(state, strict=True)
    with torch.no_grad():
        ours = model(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans).logits
        theirs = reference(inputs_embeds=spliced.inputs_embeds).logits
        via_images = model(input_ids=ids, images=images).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(via_images, theirs, rtol=0, atol=1e-5)


def test_pruned_prefill_keeps_132_image_tokens_at_original_positions(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model)
    record = PruningRecord()
    with torch.no_grad():
        out = model(input_ids=ids, images=images, pruning_record=record)
    start = int((ids[0] == IMAGE_TOKEN_INDEX).nonzero())
    length = ids.shape[1] - 1 + 576
    assert record.layer == 2 and record.prefill_length == length
    assert record.num_image_tokens() == 576 and record.num_kept_image_tokens() == 132
    assert out.logits.shape[1] == length - 576 + 132
    assert torch.equal(out.kept_indices, record.keep)
    kept_image = record.kept_image_positions()[0]
    assert kept_image.min() >= 0 and kept_image.max() < 576
    assert torch.equal(record.keep[0, :start], torch.arange(start))


def test_keys_from_cache_equal_recomputed_keys(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, max_num_trunction=64)
    with_cache, without_cache = PruningRecord(), PruningRecord()
    with torch.no_grad():
        a = model(input_ids=ids, images=images, pruning_record=with_cache, use_cache=True).logits
        b = model(input_ids=ids, images=images, pruning_record=without_cache, use_cache=False).logits
    assert torch.equal(with_cache.keep, without_cache.keep)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_pruning_changes_the_output_and_off_means_off(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    record = PruningRecord()
    with torch.no_grad():
        full = model(input_ids=ids, images=images, pruning_record=record).logits[:, -1]
    assert not record.pruned and record.num_image_tokens() == record.num_kept_image_tokens() == 576
    with torch.no_grad():
        set_dart(model, max_num_trunction=16)
        pruned = model(input_ids=ids, images=images).logits[:, -1]
    assert not torch.allclose(full, pruned, atol=1e-4)


def decode_manually(model, spliced, record, steps):
    """Greedy decoding with the KV cache; returns the tokens and the next-token logits at each step."""
    out = model(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans, pruning_record=record, use_cache=True)
    cache, logits = out.past_key_values, [out.logits[:, -1]]
    tokens = [int(out.logits[0, -1].argmax())]
    length = spliced.inputs_embeds.shape[1]
    for step in range(steps - 1):
        out = model(
            input_ids=torch.tensor([[tokens[-1]]]),
            past_key_values=cache,
            pruning_record=record,
            use_cache=True,
            attention_mask=torch.ones(1, length + step + 1, dtype=torch.long),
        )
        logits.append(out.logits[:, -1])
        tokens.append(int(out.logits[0, -1].argmax()))
    return tokens, torch.cat(logits)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_after_pruning_equals_full_forward_with_the_same_kept_set(tiny_ckpt, tiny_image, attn):
    tokenizer, model, processor = load(tiny_ckpt, attn)
    set_dart(model, max_num_trunction=32)
    ids = prompt_ids(tokenizer)
    spliced = model.prepare_multimodal_inputs(ids, process_images([tiny_image], processor, model.config))
    record, steps = PruningRecord(), 6
    with torch.no_grad():
        tokens, step_logits = decode_manually(model, spliced, record, steps)
        # One forward over prompt + generated tokens, no cache, with the prefill's kept set forced at layer K.
        generated = model.get_model().embed_tokens(torch.tensor([tokens[:-1]]))
        full_embeds = torch.cat([spliced.inputs_embeds, generated], dim=1)
        forced = PruningRecord(forced_keep=record.keep)
        full = model(inputs_embeds=full_embeds, image_spans=spliced.image_spans, pruning_record=forced).logits
    length = spliced.inputs_embeds.shape[1]
    kept = record.keep.shape[1]
    assert forced.keep.shape[1] == kept + steps - 1
    torch.testing.assert_close(full[0, kept - 1 :], step_logits, rtol=0, atol=1e-4)
    # The cache really is shorter after layer K, and new positions continue from the unpruned length.
    cache_lengths = None
    with torch.no_grad():
        cache = model(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans, use_cache=True).past_key_values
        cache_lengths = [cache.get_seq_length(i) for i in range(model.config.num_hidden_layers)]
    assert cache_lengths == [length, length] + [kept] * (model.config.num_hidden_layers - 2)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_generate_matches_manual_decoding(tiny_ckpt, tiny_image, attn):
    tokenizer, model, processor = load(tiny_ckpt, attn)
    set_dart(model, max_num_trunction=32)
    ids = prompt_ids(tokenizer)
    images = process_images([tiny_image], processor, model.config)
    with torch.no_grad():
        tokens, _ = decode_manually(model, model.prepare_multimodal_inputs(ids, images), PruningRecord(), 6)
        generated = model.generate(ids, images=images, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    assert generated[0].tolist() == tokens
    assert model.last_pruning_record.num_kept_image_tokens() == 4 + 8 * 4


def test_eager_and_sdpa_agree(tiny_ckpt, tiny_image):
    outs = []
    for attn in ("eager", "sdpa"):
        tokenizer, model, processor = load(tiny_ckpt, attn)
        set_dart(model)
        images = process_images([tiny_image], processor, model.config)
        with torch.no_grad():
            outs.append(model(input_ids=prompt_ids(tokenizer), images=images).logits)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-4)


def test_batch_equals_single_runs(eager, tiny_image):
    tokenizer, model, processor = eager
    set_dart(model, max_num_trunction=64)
    flipped = tiny_image.transpose(0)  # PIL FLIP_LEFT_RIGHT
    ids = prompt_ids(tokenizer)
    images = process_images([tiny_image, flipped], processor, model.config)
    singles, records = [], []
    with torch.no_grad():
        for i in range(2):
            records.append(PruningRecord())
            singles.append(model(input_ids=ids, images=images[i : i + 1], pruning_record=records[-1]).logits)
        batch_record = PruningRecord()
        batch = model(input_ids=ids.repeat(2, 1), images=images, pruning_record=batch_record).logits
    for i in range(2):
        assert torch.equal(batch_record.keep[i], records[i].keep[0])
        torch.testing.assert_close(batch[i], singles[i][0], rtol=0, atol=1e-5)
    assert not torch.equal(records[0].keep, records[1].keep)


def test_batched_generate_with_left_padding_equals_single_runs(eager, tiny_image):
    tokenizer, model, processor = eager
    set_dart(model, max_num_trunction=64)
    short, long, images, batch_ids, mask = left_padded_pair(tokenizer, processor, model, tiny_image)
    with torch.no_grad():
        singles = [
            model.generate(p, images=images[i : i + 1], max_new_tokens=4, min_new_tokens=4, do_sample=False)[0].tolist()
            for i, p in enumerate([short, long])
        ]
        batched = model.generate(batch_ids, images=images, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert batched.tolist() == singles


def test_generate_from_spliced_embeddings_equals_generate_from_ids(eager, tiny_image):
    """`generate(inputs_embeds=..., image_spans=...)` (what the benchmarks use) is the token-id path minus the splice."""
    tokenizer, model, processor = eager
    set_dart(model, max_num_trunction=64)
    _, _, images, batch_ids, mask = left_padded_pair(tokenizer, processor, model, tiny_image)
    greedy = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False)
    from_ids, from_embeds = PruningRecord(), PruningRecord()
    with torch.no_grad():
        expected = model.generate(batch_ids, images=images, attention_mask=mask, pruning_record=from_ids, **greedy)
        spliced = model.prepare_multimodal_inputs(batch_ids, images, mask, padding_side="left")
        got = model.generate(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask.long(),
                             image_spans=spliced.image_spans, pruning_record=from_embeds, **greedy)
    assert got.tolist() == expected.tolist()
    assert torch.equal(from_embeds.keep, from_ids.keep) and from_embeds.num_kept_image_tokens(1) == 68
    with pytest.raises(ValueError, match="not both"):
        model.generate(batch_ids, inputs_embeds=spliced.inputs_embeds, **greedy)


def test_sampled_generation_runs_with_pruning(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model)
    torch.manual_seed(0)
    out = model.generate(ids, images=images, max_new_tokens=5, min_new_tokens=5, do_sample=True, temperature=0.7, top_p=0.9)
    assert out.shape == (1, 5)


def test_prompt_without_image_is_not_pruned(eager):
    tokenizer, model, _ = eager
    set_dart(model)
    ids = tokenizer("A question without any image at all, long enough", return_tensors="pt").input_ids
    record = PruningRecord()
    with torch.no_grad():
        out = model(input_ids=ids, pruning_record=record)
        model.config.DART_config = None
        plain = model(input_ids=ids)
    assert record.keep is None and out.kept_indices is None
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)


def test_image_placeholder_count_must_match_images(eager, inputs):
    tokenizer, model, _ = eager
    ids, images = inputs
    text_only = tokenizer("no placeholder here", return_tensors="pt").input_ids
    with pytest.raises(ValueError, match=r"0 <image> placeholder\(s\) but 1 image"):
        model(input_ids=text_only, images=images)
    with pytest.raises(ValueError, match="no image was given"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match="no image was given"):
        model.generate(ids, max_new_tokens=2)


def test_invalid_dart_config_is_reported_at_forward(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    model.config.DART_config = make_dart_config(K=model.config.num_hidden_layers)
    with pytest.raises(PruningConfigError, match="must be in 1..3"):
        model(input_ids=ids, images=images)


def test_two_images_are_pruned_one_span_at_a_time(eager, tiny_image):
    tokenizer, model, processor = eager
    conv = conv_templates["vicuna_v1"].copy()
    conv.append_message(conv.roles[0], "<image>\n<image>\nSame?")
    conv.append_message(conv.roles[1], None)
    ids = tokenizer_image_token(conv.get_prompt(), tokenizer, return_tensors="pt").unsqueeze(0)
    images = process_images([tiny_image, tiny_image], processor, model.config)
    with torch.no_grad():
        out = model(input_ids=ids, images=images)
    assert out.logits.shape[1] == ids.shape[1] - 2 + 2 * 576
    set_dart(model)
    record = PruningRecord()
    with torch.no_grad():
        pruned = model(input_ids=ids, images=images, pruning_record=record)
    assert [p.numel() for p in record.kept_image_positions()] == [132, 132]  # the budget applies per image
    assert pruned.logits.shape[1] == ids.shape[1] - 2 + 2 * 132


def test_disagreeing_explicit_span_is_reported_once(eager, inputs, caplog):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, image_token_start_index=35, image_token_length=576)
    engine._reported.clear()
    with caplog.at_level(logging.WARNING, logger="llava.model.pruning.engine"), torch.no_grad():
        model(input_ids=ids, images=images)
        model(input_ids=ids, images=images)
    warnings = [r for r in caplog.records if "image_token_start_index=35" in r.getMessage()]
    assert len(warnings) == 1
    start = int((ids[0] == IMAGE_TOKEN_INDEX).nonzero())
    assert start != 35


def test_training_loss_with_pruning_uses_the_kept_labels(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    labels = ids.clone()
    labels[labels == IMAGE_TOKEN_INDEX] = -100
    with torch.no_grad():
        set_dart(model)
        out = model(input_ids=ids, images=images, labels=labels)
    assert torch.isfinite(out.loss)


def test_beam_search_with_pruning(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, max_num_trunction=32)
    record = PruningRecord()
    with torch.no_grad():
        beams = model.generate(ids, images=images, num_beams=3, max_new_tokens=4, min_new_tokens=4, pruning_record=record)
    assert beams.shape == (1, 4)
    assert record.keep.shape[0] == 3 and all(torch.equal(row, record.keep[0]) for row in record.keep)


def test_hidden_states_show_the_shorter_sequence_after_k(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, max_num_trunction=32)
    with torch.no_grad():
        out = model(input_ids=ids, images=images, output_hidden_states=True)
    full, kept = ids.shape[1] - 1 + 576, ids.shape[1] - 1 + 36
    # embeddings, then the output of each layer: layers 0 and 1 see everything, 2 and 3 the kept tokens
    assert [h.shape[1] for h in out.hidden_states] == [full, full, full, kept, kept]


def test_registered_with_auto_classes():
    from transformers import AutoConfig, AutoModelForCausalLM

    from llava.model import LlavaConfig, LlavaLlamaForCausalLM

    config = AutoConfig.for_model("llava_llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, vocab_size=64)
    assert isinstance(config, LlavaConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), LlavaLlamaForCausalLM)


def test_decoding_a_pruned_cache_without_its_record_is_a_clear_error(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, max_num_trunction=32)
    with torch.no_grad():
        cache = model(input_ids=ids, images=images, use_cache=True).past_key_values
        with pytest.raises(ValueError, match="no pruning_record was passed"):
            model(input_ids=torch.tensor([[5]]), past_key_values=cache, use_cache=True)


# -- per-call settings in the PruningRecord --------------------------------------------------------------


@pytest.mark.parametrize("as_type", [dict, DARTConfig], ids=["dict", "DARTConfig"])
def test_record_settings_prune_when_model_config_is_off(eager, inputs, as_type):
    _, model, _ = eager
    ids, images = inputs
    settings = make_dart_config(max_num_trunction=32)
    per_call = PruningRecord(dart_config=settings if as_type is dict else parse_dart_config(settings))
    with torch.no_grad():
        ours = model(input_ids=ids, images=images, pruning_record=per_call).logits
        set_dart(model, max_num_trunction=32)  # the same settings model-wide: the historical interface
        model_wide = PruningRecord()
        reference = model(input_ids=ids, images=images, pruning_record=model_wide).logits
    assert per_call.layer == 2 and per_call.num_kept_image_tokens() == 4 + 8 * (32 // 8)
    assert torch.equal(per_call.keep, model_wide.keep)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def test_record_saying_no_pruning_overrides_model_config(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    with torch.no_grad():
        unpruned = model(input_ids=ids, images=images).logits
        set_dart(model, max_num_trunction=16)
        off = PruningRecord(dart_config=None)
        ours = model(input_ids=ids, images=images, pruning_record=off).logits
        # The default (USE_MODEL_CONFIG) still reads model.config, so this call prunes.
        default = PruningRecord()
        model(input_ids=ids, images=images, pruning_record=default)
    assert PruningRecord().dart_config is USE_MODEL_CONFIG
    assert not off.pruned and off.num_kept_image_tokens() == 576
    torch.testing.assert_close(ours, unpruned, rtol=0, atol=0)
    assert default.pruned and default.num_kept_image_tokens() == 4 + 8 * 2


def test_concurrent_generates_with_different_settings_equal_sequential_ones(eager, inputs):
    _, model, _ = eager
    ids, images = inputs
    set_dart(model, K=3, max_num_trunction=8)  # what the USE_MODEL_CONFIG call must see, and nothing else
    settings = [None, make_dart_config(max_num_trunction=64), make_dart_config(K=1, max_num_trunction=16),
                USE_MODEL_CONFIG]

    def generate(setting):
        record = PruningRecord(dart_config=setting)
        with torch.no_grad():
            tokens = model.generate(ids, images=images, max_new_tokens=5, min_new_tokens=5, do_sample=False,
                                    pruning_record=record)
        return tokens[0].tolist(), record

    sequential = [generate(s) for s in settings]
    assert [r.num_kept_image_tokens() for _, r in sequential] == [576, 4 + 64, 4 + 16, 4 + 8]

    # Every call waits after its own prefill until all calls have prefilled, so they are all in flight at once
    # (each prefilled with its own settings while the others hold theirs) before any of them decodes.
    barrier, calls = threading.Barrier(len(settings)), threading.local()

    def wait_after_prefill(module, args, output):
        calls.count = getattr(calls, "count", 0) + 1
        if calls.count == 1:
            barrier.wait(timeout=60)

    results: list = [None] * len(settings)

    def run(i):
        try:
            results[i] = generate(settings[i])
        except BaseException as exc:  # re-raised below; the barrier is broken so the others do not hang
            barrier.abort()
            results[i] = exc

    handle = model.lm_head.register_forward_hook(wait_after_prefill)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(settings))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        handle.remove()
    for (tokens, record), result in zip(sequential, results):
        assert not isinstance(result, BaseException), result
        assert result[0] == tokens
        assert (record.keep is None and result[1].keep is None) or torch.equal(record.keep, result[1].keep)
        assert result[1].layer == record.layer
    assert model.config.DART_config == make_dart_config(K=3, max_num_trunction=8)  # never written by a call


@pytest.mark.parametrize("change, message", [
    ({"pivot_image_tokens": 4}, r"unknown key\(s\) \['pivot_image_tokens'\]"),
    ({"K": 4}, r"DART_config\['K'\]=4 must be in 1..3"),
    ({"reduction_ratio": 1.5}, r"DART_config\['reduction_ratio'\] must be a number in \[0, 1\)"),
], ids=["unknown key", "K too deep", "bad ratio"])
def test_invalid_record_settings_are_a_clear_error_naming_the_key(eager, inputs, change, message):
    _, model, _ = eager
    ids, images = inputs
    record = PruningRecord(dart_config={**make_dart_config(), **change})
    with pytest.raises(ValueError, match=message):
        model.generate(ids, images=images, max_new_tokens=2, pruning_record=record)
    assert model.config.DART_config is None and not record.pruned
