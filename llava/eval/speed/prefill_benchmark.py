r"""Efficiency of vanilla vs pruned LLaVA, every method measured side by side in one run. See docs/DART.md.

    python -m llava.eval.speed.prefill_benchmark                  # LLaVA-1.5-7B depth/heads, hidden 1024, CPU
    python -m llava.eval.speed.prefill_benchmark --methods dart fastv pdrop visionzip divprune pooling random
    python -m llava.eval.speed.prefill_benchmark --methods dart fastv pdrop random sparsevlm dart_k0 visionzip divprune \
        pooling vispruner cdpruner holov           # every method at LLaVA-1.5's shape
    python -m llava.eval.speed.prefill_benchmark --hidden-size 4096 --intermediate-size 11008 --device cuda
    python -m llava.eval.speed.prefill_benchmark --batch-size 1 4  # one prompt per call, then four (each pruned on its own)
    python -m llava.eval.speed.prefill_benchmark --image-tokens 2880 --kept 320 --methods dart divprune  # LLaVA-1.6's shape
    python -m llava.eval.speed.prefill_benchmark --family qwen2_vl [--image-tokens 391]   # Qwen2-VL-7B's text model
    python -m llava.eval.speed.prefill_benchmark --family qwen3_vl         # Qwen3-VL-8B's; also --family llava_onevision

Per method, budget and batch size: prefill (the language model's forward over the prompt), time to first
token (the reduction of a method that works before the language model + prefill + the first token's pick),
decode ms per step over --new-tokens tokens, their total, the method's own selection time, KV-cache bytes,
peak memory (CUDA only: the most allocated above the weights) and prefill FLOPs (`layer_flops`, summed over
every layer at the length it sees). CUDA timings are synchronised. The vision tower is not part of what is
timed: it costs every method alike; the projector's outputs are given, and a method that projects its own
merged tokens (VisionZip) pays for that inside its selection time.

The model is random-init with LLaVA-1.5-7B's layer count and head layout but a narrower width, so the
fraction of layers after K is realistic while it fits a laptop. The prompt is LLaVA-1.5's shape: a
system prompt and `USER:` (35 tokens), 576 image tokens, a short question and `ASSISTANT:`. With
`--family qwen2_vl` it is Qwen2-VL-7B's text model (28 layers, 28 query and 4 key/value heads, M-RoPE) at
width 896, with 1024 image tokens by default, pruned by reduction ratio (`--ratios`, Qwen's only budget);
`--family qwen3_vl` Qwen3-VL-8B's (36 layers, 32 / 8 heads, q / k norms, interleaved M-RoPE) at width 1024, and
`--family llava_onevision` LLaVA-OneVision-7B's Qwen2-7B at width 896 with one anyres image (3699 tokens), both
by reduction ratio too. `--help` lists each family's defaults.
Variants run interleaved (one of each per round) so machine noise hits them alike; times are medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time

import torch
from tqdm import tqdm
from llava.model import PruningRecord
from llava.model.families import families
from llava.pruning_settings import BY_NAME
from llava.model.pruning import (
    PruningInput,
    VisionInputs,
    get_method,
    make_dart_config,
    method_names,
    parse_pruning_settings,
)
from llava.model.pruning.config import dart_kept_count

def benchmark_families() -> dict:
    """`--family` value -> the family whose released model the benchmark builds (`Family.benchmark_shape`)."""
    return {family.benchmark_shape.name: family for family in families() if family.benchmark_shape is not None}


@dataclasses.dataclass
class Variant:
    name: str
    dart_config: dict | None


@dataclasses.dataclass
class Result:
    """One variant at one batch size. Seconds are medians over the timed rounds, for the whole batch."""

    name: str
    seq_len_after_k: int  # tokens per row the last layers see
    median_seconds: float  # prefill: the language model's forward over the prompt
    selection_seconds: float  # the method's own share (for a method before the language model, its reduction)
    kv_cache_bytes: int
    ideal_speedup: float = 1.0
    measured_speedup: float = 1.0  # of the time to first token
    stages: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (layer, tokens per row) per stage
    batch_size: int = 1
    ttft_seconds: float = 0.0  # reduction (if any) + prefill + picking the first token
    decode_ms_per_token: float | None = None  # one decoding step for the batch, median over the steps
    total_seconds: float = 0.0  # ttft + new tokens x decoding step
    prefill_flops: float = 0.0
    peak_memory_bytes: int | None = None  # CUDA: the most allocated above the weights; None on the CPU


def layer_flops(seq_len: int, hidden: int, intermediate: int, kv_dim: int) -> float:
    """Multiply-adds x2 of one decoder layer over `seq_len` tokens with a causal mask.

    q and o projections: 2*D*D each; k and v: 2*D*kv_dim each; SwiGLU MLP: 3 * 2*D*I;
    scores and weighted values: 2 * 2*D per (query, visible key) pair, L(L+1)/2 pairs.
    """
    linear = seq_len * (4 * hidden * hidden + 4 * hidden * kv_dim + 6 * hidden * intermediate)
    attention = 2 * hidden * seq_len * (seq_len + 1)
    return float(linear + attention)


def prefill_flops(full_len: int, stages: list[tuple[int, int]], layers: int, hidden: int, intermediate: int,
                  kv_dim: int) -> float:
    """`layer_flops` summed over the layers, each at the length it sees. `stages`: (first layer, tokens per row)
    of each pruning stage, ascending: layers before the first stage see all `full_len` tokens, each stage's
    layers (up to the next stage) its own count. One stage at K is DART's case; PyramidDrop has several."""
    bounds = [(0, full_len)] + list(stages)
    return sum((end - first) * layer_flops(tokens, hidden, intermediate, kv_dim)
               for (first, tokens), (end, _) in zip(bounds, bounds[1:] + [(layers, 0)]))


def ideal_speedup(full_len: int, stages: list[tuple[int, int]], layers: int, hidden: int, intermediate: int,
                  kv_dim: int) -> float:
    """Ratio of the FLOP counts unpruned / pruned (`prefill_flops`)."""
    dims = (layers, hidden, intermediate, kv_dim)
    return prefill_flops(full_len, [], *dims) / prefill_flops(full_len, stages, *dims)


def kv_cache_bytes(cache) -> int:
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)


def build_model(args):
    """The random-init benchmark model of the `--family` shape (its family builds it)."""
    torch.manual_seed(0)
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    model = benchmark_families()[getattr(args, "family", "llava")].benchmark_model(args)
    return model.to(device=args.device, dtype=dtype).eval()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclasses.dataclass
class VisionSide:
    """What a method before the language model gets per row, random but shaped like LLaVA-1.5's CLIP-L/336:
    the select layer's patch features (C = 1024), its [CLS] feature, attention row (summed over the 16 heads) and
    keys, the [CLS] row per head (VisPruner), a random 2-layer projector, the prompt's question (CDPruner's
    instruction) and a stand-in tower (`clip_stand_in`); the prompt's image tokens are the projector's outputs."""

    tower: torch.Tensor  # (B, n, C)
    cls: torch.Tensor  # (B, C)
    cls_attention: torch.Tensor  # (B, n)
    keys: torch.Tensor  # (B, n + 1, 64)
    projector: torch.nn.Module
    grid: tuple[int, int] | None
    head_attention: torch.Tensor | None = None  # (B, 16, n)
    instruction: str | None = None
    vision_tower: object = None

    def inputs(self, row: int, features: torch.Tensor) -> VisionInputs:
        return VisionInputs(features, self.grid, False, self.projector, self.tower[row], self.cls[row],
                            self.cls_attention[row], self.keys[row],
                            self.head_attention[row] if self.head_attention is not None else None,
                            self.instruction, self.vision_tower)


# The question of the prompt's shape (CDPruner's instruction): a GQA-style question and LLaVA-1.5's answer format.
INSTRUCTION = "What color is the car on the left side of the picture?\nAnswer the question using a single word or phrase."
HEADS = 16  # CLIP-L's


def clip_stand_in(device: str, dtype, width: int = 1024):
    """A stand-in for LLaVA-1.5's CLIP-L/336 tower as CDPruner reads it: its `post_layernorm` (width 1024) and, as
    its `clip_text_half`, a random text model of CLIP-L's text shape (width 768, 12 layers, 12 heads, 77 positions,
    projection 768) with a `visual_projection`, float32 as CDPruner runs them. The tokenizer is the embedded
    default's tiny CLIP one (a small vocabulary: the embedding lookup's cost does not depend on it, and the
    instruction fits one 77-token segment either way)."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    from llava.constants import DEFAULT_MODEL_PATH

    tokenizer = AutoTokenizer.from_pretrained(f"{DEFAULT_MODEL_PATH}/vision_tower")
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, max_position_embeddings=77, projection_dim=768, bos_token_id=0,
                            eos_token_id=2, pad_token_id=1, hidden_act="quick_gelu")
    text = CLIPTextModelWithProjection(config).to(device=device, dtype=torch.float32).eval().requires_grad_(False)
    projection = torch.nn.Linear(width, 768, bias=False).to(device).requires_grad_(False)
    return SimpleNamespace(vision_tower_name="prefill-benchmark CLIP-L stand-in", device=torch.device(device),
                           dtype=dtype, clip_text_half=(tokenizer, text, projection), vision_tower=SimpleNamespace(
                               post_layernorm=torch.nn.LayerNorm(width).to(device=device, dtype=dtype)))


def vision_side(args, batch: int, dtype, generator) -> VisionSide:
    width = 1024
    device = args.device
    projector = torch.nn.Sequential(torch.nn.Linear(width, args.hidden_size), torch.nn.GELU(),
                                    torch.nn.Linear(args.hidden_size, args.hidden_size)).to(device=device, dtype=dtype)
    n = args.image_tokens
    side = math.isqrt(n)
    random = lambda *shape: torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)  # noqa: E731
    heads = random(batch, HEADS, n).float().softmax(-1)
    tower = clip_stand_in(device, dtype, width) if "cdpruner" in getattr(args, "methods", ()) else None
    return VisionSide(random(batch, n, width), random(batch, width), heads.sum(dim=1),
                      random(batch, n + 1, width // HEADS), projector.eval(), (side, side) if side * side == n else None,
                      heads.to(dtype), INSTRUCTION, tower)


@dataclasses.dataclass
class Measurement:
    prefill: float
    ttft: float
    selection: float
    decode: list[float]
    record: PruningRecord
    kv_bytes: int  # the cache right after the prefill
    peak: int | None


def measure(model, embeds, spans, variant: Variant, vision: VisionSide, args) -> Measurement:
    """One call of one variant: reduction (methods before the language model), prefill, first token, decoding."""
    device = str(embeds.device)
    causal_lm = hasattr(model, "lm_head")  # a text model alone (Qwen's) gives hidden states, not logits
    method = get_method(variant.dart_config["method"]) if variant.dart_config else None
    before_llm = method is not None and method.before_llm
    model.config.DART_config = None if before_llm else variant.dart_config
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        weights = torch.cuda.memory_allocated()
    record = PruningRecord()
    synchronize(device)
    start = time.perf_counter()
    selection = 0.0
    if before_llm:
        settings = parse_pruning_settings(variant.dart_config, args.layers)
        (image_start, count), = spans[0]
        image_end = image_start + count
        reduced = [method.reduce(vision.inputs(b, row[image_start:image_end]), settings).features
                   for b, row in enumerate(embeds)]
        embeds = torch.stack([torch.cat([row[:image_start], image, row[image_end:]])
                              for row, image in zip(embeds, reduced)])
        spans = [[(image_start, reduced[0].shape[0])]] * len(reduced)
        synchronize(device)
        selection = time.perf_counter() - start
    prefill_start = time.perf_counter()
    extra = {"logits_to_keep": 1} if causal_lm else {}
    out = model(inputs_embeds=embeds, image_spans=spans, pruning_record=record, use_cache=True, **extra)
    synchronize(device)
    prefill = time.perf_counter() - prefill_start
    head = out.logits[:, -1] if causal_lm else out.last_hidden_state[:, -1]
    token = head.argmax(-1)
    synchronize(device)
    ttft = time.perf_counter() - start
    cache, steps = out.past_key_values, []
    kv_bytes = kv_cache_bytes(cache)
    embed = model.get_input_embeddings()
    for _ in range(args.new_tokens):
        step_start = time.perf_counter()
        step = model(inputs_embeds=embed(token % embed.num_embeddings)[:, None], past_key_values=cache,
                     pruning_record=record, use_cache=True, **extra)
        token = (step.logits[:, -1] if causal_lm else step.last_hidden_state[:, -1]).argmax(-1)
        synchronize(device)
        steps.append(time.perf_counter() - step_start)
    peak = torch.cuda.max_memory_allocated() - weights if device.startswith("cuda") else None
    return Measurement(prefill, ttft, selection + record.selection_seconds, steps, record, kv_bytes, peak)


def run(args) -> list[Result]:
    model = build_model(args)
    seq_len = args.prefix_tokens + args.image_tokens + args.suffix_tokens
    g = torch.Generator().manual_seed(1)
    largest = max(args.batch_size)
    # A batch of prompts of the same shape (different content, so each row selects its own tokens).
    embeds = (torch.randn(largest, seq_len, args.hidden_size, generator=g) * 0.02).to(device=args.device,
                                                                                      dtype=model.dtype)
    vision = vision_side(args, largest, model.dtype, g)
    if any(v.dart_config and get_method(v.dart_config["method"]).before_llm for v in variants_of(args)):
        with torch.inference_mode():  # the image tokens are the projector's outputs, as LLaVA splices them
            embeds[:, args.prefix_tokens:args.prefix_tokens + args.image_tokens] = vision.projector(vision.tower) * 0.02
    variants = [Variant("vanilla", None)] + variants_of(args)
    timed = {(v.name, b): [] for v in variants for b in args.batch_size}
    results: dict[tuple[str, int], Result] = {}
    rounds = tqdm(range(args.warmup + args.repeats), desc="rounds", unit="round", file=sys.stderr)
    with torch.inference_mode():
        for round_index in rounds:
            rounds.set_postfix_str("warm-up" if round_index < args.warmup else "timed")
            for batch in args.batch_size:
                spans = [[(args.prefix_tokens, args.image_tokens)]] * batch
                for variant in variants:
                    m = measure(model, embeds[:batch], spans, variant, vision, args)
                    if round_index >= args.warmup:
                        timed[variant.name, batch].append(m)
                    results[variant.name, batch] = summarise(variant.name, batch, m, seq_len, args)
    for (name, batch), result in results.items():
        runs = timed[name, batch]
        result.median_seconds = statistics.median(m.prefill for m in runs)
        result.ttft_seconds = statistics.median(m.ttft for m in runs)
        result.selection_seconds = statistics.median(m.selection for m in runs)
        steps = [step for m in runs for step in m.decode]
        result.decode_ms_per_token = 1000 * statistics.median(steps) if steps else None
        result.total_seconds = result.ttft_seconds + args.new_tokens * (result.decode_ms_per_token or 0) / 1000
        peaks = [m.peak for m in runs if m.peak is not None]
        result.peak_memory_bytes = max(peaks) if peaks else None
        # Of the time to first token, so that a method's selection counts wherever it runs.
        result.measured_speedup = results["vanilla", batch].ttft_seconds / result.ttft_seconds
        result.ideal_speedup = results["vanilla", batch].prefill_flops / result.prefill_flops
    return list(results.values())


def summarise(name: str, batch: int, m: Measurement, seq_len: int, args) -> Result:
    """A variant's shapes: the tokens each layer saw (from the record, or the reduced prompt), KV cache, FLOPs."""
    record = m.record
    if record.image_reductions is not None or record.keep is None:
        # Reduced before the language model (or not pruned): every layer sees the prompt it was given.
        prompt = record.prefill_length or seq_len
        full, stages = prompt, []
    else:
        full = seq_len
        stages = [(stage.layer, stage.keep.shape[1]) for stage in record.stages]
    kept_len = stages[-1][1] if stages else full
    kv_dim = args.kv_heads * (args.hidden_size // args.heads)
    flops = batch * prefill_flops(full, stages, args.layers, args.hidden_size, args.intermediate_size, kv_dim)
    return Result(name, kept_len, 0.0, 0.0, m.kv_bytes, stages=stages, batch_size=batch,
                  prefill_flops=flops)


def variants_of(args) -> list[Variant]:
    """The pruned variants: budgets by max_num_trunction on LLaVA, by reduction ratio where the family's budget is
    the ratio alone (Qwen)."""
    if benchmark_families()[args.family].ratio_budget:
        return [Variant(f"{method}-{ratio}", make_dart_config(K=args.k, reduction_ratio=ratio, max_num_trunction=None,
                                                              method=method))
                for ratio in args.ratios for method in args.methods]
    variants = [Variant(f"{method}-{kept}", make_dart_config(K=args.k, max_num_trunction=kept, method=method))
                for kept in args.kept for method in args.methods if method != "pdrop"]
    if "pdrop" in args.methods:  # its budget is its stages' ratios, not a kept count
        variants.append(Variant("pdrop", make_dart_config(K=args.k, method="pdrop")))
    return variants


def format_table(results: list[Result], seq_len: int, new_tokens: int) -> str:
    lines = [
        f"{'variant':<13} {'batch':>5} {'tokens/row':>10} {'prefill ms':>10} {'speed-up':>8} {'ideal':>7} "
        f"{'TTFT ms':>9} {'decode ms':>9} {'total ms':>9} {'select ms':>9} {'KV MiB':>8} {'peak MiB':>8} "
        f"{'GFLOPs':>8}"
    ]
    for r in results:
        decode = f"{r.decode_ms_per_token:.1f}" if r.decode_ms_per_token is not None else "-"
        peak = f"{r.peak_memory_bytes / 2**20:.1f}" if r.peak_memory_bytes is not None else "n/a"
        lines.append(
            f"{r.name:<13} {r.batch_size:>5} {r.seq_len_after_k:>10} {1000 * r.median_seconds:>10.1f} "
            f"{r.measured_speedup:>7.2f}x {r.ideal_speedup:>6.2f}x {1000 * r.ttft_seconds:>9.1f} {decode:>9} "
            f"{1000 * r.total_seconds:>9.1f} {1000 * r.selection_seconds:>9.2f} {r.kv_cache_bytes / 2**20:>8.1f} "
            f"{peak:>8} {r.prefill_flops / 1e9:>8.1f}"
        )
    lines.append(
        f"(prompt: {seq_len} tokens per row; tokens/row: what the last layers see; speed-up: of the time to first "
        "token; ideal: the prefill's FLOP ratio; TTFT: reduction + prefill + first token; decode: one step for the whole "
        f"batch, median over {new_tokens} new tokens; total: TTFT + {new_tokens} steps; peak: CUDA only, above the "
        "weights; GFLOPs: prefill, 2 x multiply-adds of every layer at its own length (layer_flops); times, KV cache "
        "and FLOPs for the whole batch)"
    )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shapes = benchmark_families()
    parser.add_argument("--family", choices=sorted(shapes), default="llava",
                        help="; ".join(f"{name}: {family.benchmark_shape.description}" for name, family in shapes.items()))

    def defaults(field: str) -> str:
        values = ", ".join(f"{getattr(f.benchmark_shape, field) or 'as --heads'} ({name})" for name, f in shapes.items())
        return f"default: {values}"

    parser.add_argument("--layers", type=int, help=defaults("layers"))
    parser.add_argument("--heads", type=int, help=defaults("heads"))
    parser.add_argument("--kv-heads", type=int, help="key/value heads; " + defaults("kv_heads"))
    parser.add_argument("--hidden-size", type=int, help=defaults("hidden_size"))
    parser.add_argument("--intermediate-size", type=int, help=defaults("intermediate_size") + " (the released models' "
                                                                                                "MLP ratios)")
    parser.add_argument("--k", type=int, default=BY_NAME["pruned_layer"].default, help="DART's pruned layer K")
    parser.add_argument("--kept", type=int, nargs="+", default=[128, 64], help="max_num_trunction values (llava)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[BY_NAME["reduction_ratio"].default],
                        help="reduction ratios (families that budget by the ratio alone: "
                             + ", ".join(name for name, f in shapes.items() if f.ratio_budget) + ")")
    parser.add_argument("--methods", nargs="+", default=["dart", "random"], choices=method_names(),
                        help="pruning methods to time beside vanilla (pdrop and sparsevlm use their stages, not "
                             "--kept; visionzip, divprune, pooling, vispruner, cdpruner and holov work before the "
                             "language model, on a random CLIP-L-shaped tower side; those reading the [CLS] token "
                             "not on Qwen or OneVision)")
    parser.add_argument("--prefix-tokens", type=int, help=defaults("prefix_tokens"))
    parser.add_argument("--image-tokens", type=int, help=defaults("image_tokens"))
    parser.add_argument("--suffix-tokens", type=int, help=defaults("suffix_tokens"))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1],
                        help="prompts per call; several sizes run side by side (e.g. 1 8)")
    parser.add_argument("--new-tokens", type=int, default=16, help="decoding steps timed after each prefill")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--attn-implementation", default="sdpa", choices=["eager", "sdpa", "flash_attention_2"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    family = shapes[args.family]
    for field in dataclasses.fields(family.benchmark_shape):
        if field.name not in ("name", "description") and getattr(args, field.name) is None:
            setattr(args, field.name, getattr(family.benchmark_shape, field.name))
    args.kv_heads = args.kv_heads or args.heads
    if min(args.batch_size) < 1:
        parser.error("--batch-size must be at least 1")
    if args.new_tokens < 0:
        parser.error("--new-tokens must be at least 0")
    before_llm = [m for m in args.methods if get_method(m).before_llm]
    if before_llm and not family.before_llm_methods:
        parser.error(f"{', '.join(before_llm)} reduce the image before the language model, which the {family.name} "
                     "family does not do")
    needs_cls = [m for m in before_llm if PruningInput.VISION_CLS_ATTENTION in get_method(m).inputs
                 and m not in family.refused_methods]
    if needs_cls and not getattr(family, "vision_cls_attention", True):
        parser.error(f"{', '.join(needs_cls)} read the vision tower's [CLS] token, which the {family.name} family's "
                     "tower has not")
    refused = [f"{m} ({family.refused_methods[m]})" for m in args.methods if m in family.refused_methods]
    if refused:
        parser.error(f"the {family.name} family does not run {', '.join(refused)}")
    grid_methods = [m for m in before_llm if get_method(m).one_crop]
    if grid_methods and math.isqrt(args.image_tokens) ** 2 != args.image_tokens:
        parser.error(f"{', '.join(grid_methods)} need one crop's square patch grid; --image-tokens "
                     f"{args.image_tokens} is not a square (LLaVA-1.6's merged crops: use divprune)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available: benchmarking on the CPU", file=sys.stderr)
        args.device = "cpu"
    parse_pruning_settings(make_dart_config(K=args.k), args.layers)  # fail early on an impossible K
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    seq_len = args.prefix_tokens + args.image_tokens + args.suffix_tokens
    print(
        f"prefill benchmark: {args.family}, {args.layers} layers, {args.heads} heads ({args.kv_heads} key/value), "
        f"hidden {args.hidden_size}, "
        f"{args.attn_implementation}, {args.device}, batch {' and '.join(map(str, args.batch_size))}, torch threads {torch.get_num_threads()}, "
        f"{args.repeats} timed rounds after {args.warmup} warm-up"
    )
    results = run(args)
    print(format_table(results, seq_len, args.new_tokens))
    by_name = {(r.name, r.batch_size): r for r in results}
    headline_variant = next((v for v in variants_of(args) if v.name.startswith("dart-")), None)
    batch = args.batch_size[0]
    headline = by_name.get((headline_variant.name, batch)) if headline_variant else None
    if headline is not None:
        image_kept = args.image_tokens - (seq_len - headline.seq_len_after_k)
        expected = dart_kept_count(args.image_tokens, parse_pruning_settings(headline_variant.dart_config))
        print(
            f"summary: DART keeping {image_kept}/{args.image_tokens} image tokens (expected {expected}) at batch "
            f"{batch}: time to first token "
            f"{headline.measured_speedup:.2f}x faster (ideal {headline.ideal_speedup:.2f}x, ratio "
            f"{headline.measured_speedup / headline.ideal_speedup:.2f}); selection "
            f"{100 * headline.selection_seconds / headline.median_seconds:.2f}% of the pruned prefill; "
            f"{1000 * headline.ttft_seconds:.0f} ms vs {1000 * by_name['vanilla', batch].ttft_seconds:.0f} ms unpruned"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": [dataclasses.asdict(r) for r in results]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
