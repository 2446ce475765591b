"""SparseVLM: the official rater, top-k and clustering rules reproduced on crafted inputs by literal loops, the
released (1_0) prefill and decoding (renumbered positions, token recycling) against an eager loop over a tiny
LLaVA's decoder layers written from the official forward, the `original` option's stages and counts through
`generate`, and a ragged batch equal to single runs.

The references follow github.com/Gumpest/SparseVLMs: `LlamaDynamicvitModel.forward` and
`LlamaDynamicvitSdpaAttention.forward` (llava/model/language_model/modelling_sparse_llama.py), `score.py`'s
`attn_postprocess_topk` and `utils.py`'s `cluster_and_merge`, version 1_0."""

import math

import pytest
import torch
from test_engine import generate_batch, generate_single, scene, single_runs, strip_eos
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import PruningConfigError, SpanInputs, make_dart_config, parse_dart_config
from llava.model.pruning.sparsevlm import SCHEDULES, cluster_and_merge, schedule_for, select

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
    # DART keeps 132: target 128. Original positions: what this method did before recycling (nothing inserted).
    settings = make_dart_config(method="sparsevlm", max_num_trunction=128, sparsevlm_positions="original")
    record = PruningRecord(dart_config=settings)
    generate_single(model, ids, images, record, max_new_tokens=4)
    assert [stage.layer for stage in record.stages] == [1, 2, 3]
    assert all(stage.position_shift is None and stage.inserted is None for stage in record.stages)
    first = record.stages[0].keep[0]
    released = PruningRecord(dart_config=make_dart_config(method="sparsevlm", max_num_trunction=128))
    generate_single(model, ids, images, released, max_new_tokens=4)
    # The first stage ranks unpruned positions in both modes; the released one then adds its clusters.
    assert torch.equal(released.stages[0].keep[0][~released.stages[0].inserted[0]], first)

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
        assert batch_record.num_inserted_tokens(b) == record.num_inserted_tokens()
        if record.stages:
            assert int(batch_record.stages[-1].position_shift[b]) == int(record.stages[-1].position_shift[0])
        assert all(torch.equal(a, s) for a, s in zip(batch_record.kept_image_positions(b), record.kept_image_positions()))
    # The last stage keeps 17 of the v tokens left (some inserted before) and inserts int(p / 10) + 1 clusters
    # of the top p = int(0.3 d) + 1 of its d = v - 17 deleted ones.
    record = singles[0][1]
    (start, count), = record.image_spans[0]
    before, last = (stage.keep[0] for stage in record.stages[-2:])
    v = int(((before >= start) & (before < start + count)).sum())
    assert record.num_kept_image_tokens() == SCHEDULES[64][-1] + int((int(0.3 * (v - 17)) + 1) / 10) + 1
    assert record.num_inserted_tokens() > 0 and record.num_kept_image_tokens() == int(((last >= start)
                                                                                      & (last < start + count)).sum())


def test_the_positions_setting_is_checked_and_written_only_when_given():
    cfg = parse_dart_config(make_dart_config(method="sparsevlm"), num_hidden_layers=4)
    assert cfg.method_settings.renumbers_positions and "sparsevlm_positions" not in cfg.to_dict()
    cfg = parse_dart_config(make_dart_config(method="sparsevlm", sparsevlm_positions="original"), num_hidden_layers=4)
    assert not cfg.method_settings.renumbers_positions and cfg.to_dict()["sparsevlm_positions"] == "original"
    assert cfg.method_settings.sparsevlm_layers == (0, 1, 2)
    with pytest.raises(PruningConfigError, match=r"sparsevlm_positions.*'renumbered', 'original'"):
        parse_dart_config(make_dart_config(method="sparsevlm", sparsevlm_positions="kept"), num_hidden_layers=4)


# -- density-peak clustering ----------------------------------------------------------------------------------


def official_cluster_by_loops(points, cluster_num, noise):
    """utils.py's cluster_and_merge for one sample, written as loops over Python floats, with the density noise
    `torch.rand(...) * 1e-6` given as `noise`: (merged tokens, the cluster of each token)."""
    n, c = len(points), len(points[0])
    dist = [[math.sqrt(sum((a - b) ** 2 for a, b in zip(p, q))) / c ** 0.5 for q in points] for p in points]
    density = [math.exp(-sum(d ** 2 for d in sorted(row)[:cluster_num]) / cluster_num) + noise[i]
               for i, row in enumerate(dist)]
    dist_max = max(max(row) for row in dist)
    parent = [min([dist[i][j] for j in range(n) if density[j] > density[i]] + [dist_max]) for i in range(n)]
    score = [parent[i] * density[i] for i in range(n)]
    centres = sorted(range(n), key=lambda i: -score[i])[:cluster_num]
    cluster = [min(range(cluster_num), key=lambda k: (dist[centres[k]][j], k)) for j in range(n)]
    for k, centre in enumerate(centres):
        cluster[centre] = k
    merged = []
    for k in range(cluster_num):
        members = [points[j] for j in range(n) if cluster[j] == k]
        merged.append([sum(m[d] for m in members) / (len(members) + 1e-6) for d in range(c)])
    return merged, cluster, density


def crafted_points():
    """Groups on a line (the other 3 channels 0, so that every distance and density is exact): exact duplicates
    and mirrored neighbourhoods (equal densities, a zero distance to the denser copy), a token halfway between
    two groups (equally near two centres) and otherwise well separated densities."""
    line = [0.0, 0.0, 0.5, 10.0, 10.5, 10.5, 5.25, 20.0, 20.25, 20.25, 20.25, 31.0, 0.5]
    return [[x, 0.0, 0.0, 0.0] for x in line]


@pytest.mark.parametrize("cluster_num", [1, 2, 3, 4])
def test_clustering_follows_the_official_equations_ties_included(cluster_num):
    points = crafted_points()
    n = len(points)
    # The official noise is a uniform draw times 1e-6; the tie rule here equals the draw decreasing along the
    # tokens, for densities that differ by more than 1e-6 or not at all.
    noise = [(n - i) / (n + 1) * 1e-6 for i in range(n)]
    expected, clusters, _ = official_cluster_by_loops(points, cluster_num, noise)
    _, _, plain = official_cluster_by_loops(points, cluster_num, [0.0] * n)
    gaps = [abs(a - b) for i, a in enumerate(plain) for b in plain[:i] if a != b]
    assert min(gaps, default=1.0) > 1e-5 and len(set(plain)) < n  # the premise: ties, and no near-ties
    merged = cluster_and_merge(torch.tensor(points, dtype=torch.float64), cluster_num)
    torch.testing.assert_close(merged, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert len(set(clusters)) == cluster_num


def test_clustering_of_random_tokens_matches_in_their_dtype():
    torch.manual_seed(3)
    x = torch.randn(23, 6, dtype=torch.float64)
    expected, _, _ = official_cluster_by_loops(x.tolist(), 3, [0.0] * 23)
    torch.testing.assert_close(cluster_and_merge(x, 3, rows_per_chunk=5), torch.tensor(expected, dtype=x.dtype),
                               rtol=0, atol=1e-12)
    assert cluster_and_merge(x.float(), 3).dtype == torch.float32


# -- the released prefill and decoding --------------------------------------------------------------------------

STEPS = 4


def official_cluster_and_merge(x, cluster_num, noise):
    """utils.py's cluster_and_merge transcribed for tensors (B, N, C), the noise given."""
    b, n, c = x.shape
    dist = (x[:, :, None] - x[:, None]).norm(dim=-1, p=2) / (c ** 0.5)
    nearest, _ = torch.topk(dist, k=cluster_num, dim=-1, largest=False)
    density = (-(nearest ** 2).mean(dim=-1)).exp() + noise
    mask = (density[:, None, :] > density[:, :, None]).type(x.dtype)
    dist_max = dist.flatten(1).max(dim=-1)[0][:, None, None]
    parent, _ = (dist * mask + dist_max * (1 - mask)).min(dim=-1)
    _, centres = torch.topk(parent * density, k=cluster_num, dim=-1)
    cluster = dist[0, centres[0]][None].argmin(dim=1)
    cluster[0, centres[0]] = torch.arange(cluster_num)
    weight = x.new_zeros(cluster_num, 1).index_add_(0, cluster[0], x.new_ones(n, 1)) + 1e-6
    return x.new_zeros(cluster_num, c).index_add_(0, cluster[0], x[0] / weight[cluster[0]])[None]


def official_weights(layer, rotary, hidden, positions):
    """The SDPA attention's `attn_logits` at a sparse layer: softmax(q k^T / sqrt(d) + causal bias), per head."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    attn = layer.self_attn
    normed = layer.input_layernorm(hidden)
    batch, length, _ = normed.shape
    query = attn.q_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    key = attn.k_proj(normed).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    cos, sin = rotary(normed, positions)
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    key = repeat_kv(key, query.shape[1] // key.shape[1])
    bias = torch.full((length, length), float("-inf")).triu(1)
    return torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(attn.head_dim) + bias, dim=-1)


def official(model, embeds, span, rank_layers, schedule, steps):
    """LlamaDynamicvitModel.forward at batch 1, version 1_0, and greedy cached decoding: per stage the absolute
    positions of the sequence (an inserted token: the image's last position) and which entries are inserted,
    and the logits per step."""
    from transformers import DynamicCache

    lm = model.get_model()
    v_token_start, v_token_num = span
    text_token_start = v_token_start + v_token_num
    m_v_t = (embeds[0, v_token_start:text_token_start] @ embeds[0, text_token_start:].T).softmax(1).mean(0)
    t_token_idx = torch.where(m_v_t > m_v_t.mean())[0]
    hidden = embeds
    position_ids = torch.arange(embeds.shape[1])[None]
    absolute, inserted = list(range(embeds.shape[1])), [False] * embeds.shape[1]
    cache = DynamicCache(config=lm.config)
    stages = []
    causal = torch.full((embeds.shape[1],) * 2, torch.finfo(embeds.dtype).min).triu(1)[None, None]
    for idx, layer in enumerate(lm.layers):
        n = hidden.shape[1]
        output = layer(hidden, attention_mask=causal[..., :n, :n],
                       position_embeddings=lm.rotary_emb(hidden, position_ids), past_key_values=cache, use_cache=True)
        if idx in rank_layers:
            weights = official_weights(layer, lm.rotary_emb, hidden, position_ids).mean(1)
            relation = weights[:, t_token_idx + text_token_start, v_token_start:text_token_start].mean(1)[0]
            keep = min(schedule[rank_layers.index(idx)], v_token_num - 1)
            pred = torch.zeros(v_token_num, dtype=torch.bool)
            pred[torch.topk(relation, keep).indices] = True
            deleted = torch.where(~pred)[0]
            stage2 = relation[deleted].topk(int(deleted.shape[0] * 0.3) + 1)[1]
            tokens = output[:, v_token_start + deleted[stage2]]
            cluster_num = int(tokens.shape[1] / 10) + 1
            noise = (tokens.shape[1] - torch.arange(tokens.shape[1])) / (tokens.shape[1] + 1) * 1e-6
            merged = official_cluster_and_merge(tokens, cluster_num, noise.to(tokens.dtype))
            kept = v_token_start + torch.where(pred)[0]
            hidden = torch.cat([output[:, :v_token_start], output[:, kept], merged, output[:, text_token_start:]], 1)
            anchor = span[0] + span[1] - 1
            absolute = (absolute[:v_token_start] + [absolute[i] for i in kept] + [anchor] * cluster_num
                        + absolute[text_token_start:])
            inserted = (inserted[:v_token_start] + [inserted[i] for i in kept] + [True] * cluster_num
                        + inserted[text_token_start:])
            stages.append((torch.tensor(absolute), torch.tensor(inserted)))
            v_token_num = keep + cluster_num
            text_token_start = v_token_start + v_token_num
            position_ids = position_ids[:, : hidden.shape[1]]  # 1_0: position_ids[:, :len(select) + cluster_num]
        else:
            hidden = output
    logits = [model.lm_head(lm.norm(hidden))[:, -1]]
    for _ in range(1, steps):
        hidden = lm.embed_tokens(logits[-1].argmax(-1))[:, None]
        for idx, layer in enumerate(lm.layers):
            position = torch.tensor([[cache.get_seq_length(idx)]])  # 1_0: get_usable_length(kv_seq_len, layer)
            hidden = layer(hidden, attention_mask=None, position_embeddings=lm.rotary_emb(hidden, position),
                           past_key_values=cache, use_cache=True)
        logits.append(model.lm_head(lm.norm(hidden))[:, -1])
    return stages, torch.stack(logits, 1)


@pytest.mark.parametrize("budget", [128, 64])
def test_released_prefill_and_decoding_match_the_official_forward(tiny, budget):
    tokenizer, model, processor = tiny
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square in this picture?")
    images = process_images([scene(4)], processor, model.config)
    settings = make_dart_config(method="sparsevlm", max_num_trunction=budget)
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        out = model.generate(ids[None], images=images, pruning_record=record, do_sample=False, max_new_tokens=STEPS,
                             min_new_tokens=STEPS, return_dict_in_generate=True, output_logits=True)
        spliced = model.prepare_multimodal_inputs(ids[None], images)
        (span,) = spliced.image_spans[0]
        schedule = schedule_for(dict([(128, 132), (64, 68)])[budget])
        stages, expected = official(model, spliced.inputs_embeds, span, [0, 1, 2], schedule, STEPS)
    assert [stage.layer for stage in record.stages] == [1, 2, 3]
    for stage, (absolute, inserted) in zip(record.stages, stages):
        assert torch.equal(stage.keep[0], absolute), stage.layer
        assert torch.equal(stage.inserted[0], inserted), stage.layer
        # the renumbered prefill: a decoding step's position is this stage's layers' cache length
        assert int(stage.position_shift[0]) == spliced.inputs_embeds.shape[1] - absolute.numel()
    assert record.num_inserted_tokens() == int(stages[-1][1].sum()) > 0
    start, count = span
    last = stages[-1][0]
    assert record.num_kept_image_tokens() == int(((last >= start) & (last < start + count)).sum())  # v_token_num
    assert record.kept_positions().numel() == stages[-1][0].numel() - record.num_inserted_tokens()
    torch.testing.assert_close(torch.stack(out.logits, 1), expected, rtol=0, atol=1e-4)


def test_a_ragged_batch_with_two_images_decodes_like_single_runs(tiny):
    """Left padding, rows keeping and inserting different counts (one image, none, two, each image recycling
    into its own span): each row's logits as alone, its inserted tokens and its decoding positions' shift."""
    from test_engine import decode_ragged_batch_and_singles

    tokenizer, model, processor = tiny
    settings = make_dart_config(method="sparsevlm", max_num_trunction=64)
    batch, singles = decode_ragged_batch_and_singles(model, tokenizer, processor, settings, STEPS)
    for b, single in enumerate(singles):
        if single is not None:
            assert batch.num_inserted_tokens(b) == single.num_inserted_tokens() > 0
            assert int(batch.stages[-1].position_shift[b]) == int(single.stages[-1].position_shift[0])
            assert all(torch.equal(x, y) for x, y in zip(batch.kept_image_positions(b), single.kept_image_positions()))
    two = batch.stages[0]
    spans = batch.image_spans[2]
    inserted = two.keep[2][two.inserted[2] & two.keep_valid[2]]
    assert {int(p) for p in inserted} == {start + count - 1 for start, count in spans}  # one place per image


def test_m_rope_keeps_original_positions_and_recycles_nothing(monkeypatch):
    """Qwen-VL's M-RoPE cannot be renumbered: the kept sets of `sparsevlm_positions="original"`, nothing inserted."""
    from transformers import Qwen2VLTextConfig, Qwen2VLTextModel

    from llava.model.pruning import engine
    from llava.model.pruning.attach import attach_engine
    from llava.model.pruning.backends import QwenVLBackend

    torch.manual_seed(0)
    config = Qwen2VLTextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                               num_attention_heads=4, num_key_value_heads=2, attn_implementation="eager",
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]})
    model = Qwen2VLTextModel(config).eval()
    attach_engine(model, lambda: QwenVLBackend(model))
    monkeypatch.setattr(engine, "_reported", set())
    embeds = torch.randn(1, 48, 32)
    grid = torch.arange(48)
    positions = torch.stack([grid, grid * 2 % 7, grid * 3 % 5])[:, None]
    kept = {}
    for mode in ("renumbered", "original"):
        record = PruningRecord(dart_config=make_dart_config(method="sparsevlm", max_num_trunction=64,
                                                            sparsevlm_positions=mode))
        with torch.no_grad():
            model(inputs_embeds=embeds, position_ids=positions, image_spans=[[(4, 32)]], pruning_record=record)
        assert all(stage.position_shift is None and stage.inserted is None for stage in record.stages)
        kept[mode] = [stage.keep for stage in record.stages]
    assert len(kept["original"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(kept["renumbered"], kept["original"]))
