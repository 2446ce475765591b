"""Prefill cost of vanilla vs pruned LLaVA, measured side by side in one run. See docs/DART.md.

    python -m llava.eval.prefill_benchmark                  # LLaVA-1.5-7B depth/heads, hidden 1024, CPU
    python -m llava.eval.prefill_benchmark --hidden-size 4096 --intermediate-size 11008 --device cuda
    python -m llava.eval.prefill_benchmark --batch-size 4   # four prompts per call, each pruned on its own
    python -m llava.eval.prefill_benchmark --family qwen2_vl [--image-tokens 391]   # Qwen2-VL-7B's text model

The model is random-init with LLaVA-1.5-7B's layer count and head layout but a narrower width, so the
fraction of layers after K is realistic while it fits a laptop. The prompt is LLaVA-1.5's shape: a
system prompt and `USER:` (35 tokens), 576 image tokens, a short question and `ASSISTANT:`. With
`--family qwen2_vl` it is Qwen2-VL-7B's text model (28 layers, 28 query and 4 key/value heads, M-RoPE) at
width 896, with 1024 image tokens by default, pruned by reduction ratio (`--ratios`, Qwen's only budget).
Variants run interleaved (one of each per round) so machine noise hits them alike; times are medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time

import torch
from tqdm import tqdm
from transformers import Qwen2VLTextConfig

from llava.model import LlavaConfig, LlavaLlamaForCausalLM, PruningRecord
from llava.model.language_model.qwen_vl import Qwen2VLTextModelWithPruning
from llava.model.pruning import make_dart_config, method_names, parse_dart_config
from llava.model.pruning.config import dart_kept_count

# Per family: LLaVA-1.5-7B's layer count and heads at width 1024, Qwen2-VL-7B's (GQA 28 / 4) at width 896;
# the MLP keeps the 7B models' intermediate/hidden ratios; the prompt is the family's usual shape.
FAMILY_DEFAULTS = {
    "llava": {"layers": 32, "heads": 32, "kv_heads": None, "hidden_size": 1024, "intermediate_size": 2752,
              "prefix_tokens": 35, "image_tokens": 576, "suffix_tokens": 25},
    "qwen2_vl": {"layers": 28, "heads": 28, "kv_heads": 4, "hidden_size": 896, "intermediate_size": 4736,
                 "prefix_tokens": 15, "image_tokens": 1024, "suffix_tokens": 25},
}


@dataclasses.dataclass
class Variant:
    name: str
    dart_config: dict | None


@dataclasses.dataclass
class Result:
    name: str
    seq_len_after_k: int
    median_seconds: float
    selection_seconds: float
    kv_cache_bytes: int
    ideal_speedup: float = 1.0
    measured_speedup: float = 1.0
    stages: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (layer, tokens per row) per stage


def layer_flops(seq_len: int, hidden: int, intermediate: int, kv_dim: int) -> float:
    """Multiply-adds x2 of one decoder layer over `seq_len` tokens with a causal mask.

    q and o projections: 2*D*D each; k and v: 2*D*kv_dim each; SwiGLU MLP: 3 * 2*D*I;
    scores and weighted values: 2 * 2*D per (query, visible key) pair, L(L+1)/2 pairs.
    """
    linear = seq_len * (4 * hidden * hidden + 4 * hidden * kv_dim + 6 * hidden * intermediate)
    attention = 2 * hidden * seq_len * (seq_len + 1)
    return float(linear + attention)


def ideal_speedup(full_len: int, stages: list[tuple[int, int]], layers: int, hidden: int, intermediate: int,
                  kv_dim: int) -> float:
    """Ratio of the FLOP counts unpruned / pruned. `stages`: (first layer, tokens per row) of each pruning
    stage, ascending: layers before the first stage see all `full_len` tokens, each stage's layers (up to the
    next stage) its own count. One stage at K is DART's case; PyramidDrop has several."""
    full = layers * layer_flops(full_len, hidden, intermediate, kv_dim)
    bounds = [(0, full_len)] + list(stages)
    pruned = 0.0
    for (first, tokens), (end, _) in zip(bounds, bounds[1:] + [(layers, 0)]):
        pruned += (end - first) * layer_flops(tokens, hidden, intermediate, kv_dim)
    return full / pruned


def kv_cache_bytes(cache) -> int:
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)


def build_model(args):
    """The random-init benchmark model: LLaVA-1.5 (`family` llava) or Qwen2-VL's text model (qwen2_vl)."""
    torch.manual_seed(0)
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    if getattr(args, "family", "llava") == "qwen2_vl":
        return build_qwen_text_model(args).to(device=args.device, dtype=dtype).eval()
    config = LlavaConfig(
        vocab_size=32000,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=getattr(args, "kv_heads", None) or args.heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        attn_implementation=args.attn_implementation,
    )
    return LlavaLlamaForCausalLM(config).to(device=args.device, dtype=dtype).eval()


def build_qwen_text_model(args):
    """Qwen2-VL-7B's text model layout (GQA, M-RoPE in three sections) at the benchmark's width. The prompt
    is given as spliced embeddings, so the vision tower is not part of what is timed."""
    head_dim = args.hidden_size // args.heads
    sections = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # 7B: 16, 24, 24 of 64 frequencies
    config = Qwen2VLTextConfig(
        vocab_size=32000, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=32768, rms_norm_eps=1e-6, use_sliding_window=False, bos_token_id=None, eos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": sections},
    )
    config._attn_implementation = args.attn_implementation
    return Qwen2VLTextModelWithPruning(config)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def prefill(model, embeds, spans, record) -> tuple[float, object]:
    synchronize(str(embeds.device))
    start = time.perf_counter()
    extra = {"logits_to_keep": 1} if isinstance(model, LlavaLlamaForCausalLM) else {}
    out = model(inputs_embeds=embeds, image_spans=spans, pruning_record=record, use_cache=True, **extra)
    synchronize(str(embeds.device))
    return time.perf_counter() - start, out.past_key_values


def run(args) -> list[Result]:
    model = build_model(args)
    seq_len = args.prefix_tokens + args.image_tokens + args.suffix_tokens
    g = torch.Generator().manual_seed(1)
    # A batch of prompts of the same shape (different content, so each row selects its own tokens).
    embeds = torch.randn(args.batch_size, seq_len, args.hidden_size, generator=g) * 0.02
    embeds = embeds.to(device=args.device, dtype=model.dtype)
    spans = [[(args.prefix_tokens, args.image_tokens)]] * args.batch_size
    variants = [Variant("vanilla", None)] + variants_of(args)
    times = {v.name: [] for v in variants}
    selection = {v.name: [] for v in variants}
    results: dict[str, Result] = {}
    rounds = tqdm(range(args.warmup + args.repeats), desc="prefill rounds", unit="round", file=sys.stderr)
    with torch.inference_mode():
        for round_index in rounds:
            rounds.set_postfix_str("warm-up" if round_index < args.warmup else "timed")
            for variant in variants:
                model.config.DART_config = variant.dart_config
                record = PruningRecord()
                seconds, cache = prefill(model, embeds, spans, record)
                if round_index >= args.warmup:
                    times[variant.name].append(seconds)
                    selection[variant.name].append(record.selection_seconds)
                pruned_len = record.keep.shape[1] if record.pruned else seq_len
                stages = [(stage.layer, stage.keep.shape[1]) for stage in record.stages]
                results[variant.name] = Result(variant.name, pruned_len, 0.0, 0.0, kv_cache_bytes(cache),
                                               stages=stages)
    kv_dim = args.kv_heads * (args.hidden_size // args.heads)
    base = statistics.median(times["vanilla"])
    for name, result in results.items():
        result.median_seconds = statistics.median(times[name])
        result.selection_seconds = statistics.median(selection[name])
        result.measured_speedup = base / result.median_seconds
        result.ideal_speedup = ideal_speedup(
            seq_len, result.stages, args.layers, args.hidden_size, args.intermediate_size, kv_dim
        )
    return list(results.values())


def variants_of(args) -> list[Variant]:
    """The pruned variants: budgets by max_num_trunction on LLaVA, by reduction ratio on Qwen (its only budget)."""
    if args.family == "qwen2_vl":
        return [Variant(f"{method}-{ratio}", make_dart_config(K=args.k, reduction_ratio=ratio, max_num_trunction=None,
                                                              method=method))
                for ratio in args.ratios for method in args.methods]
    variants = [Variant(f"{method}-{kept}", make_dart_config(K=args.k, max_num_trunction=kept, method=method))
                for kept in args.kept for method in args.methods if method != "pdrop"]
    if "pdrop" in args.methods:  # its budget is its stages' ratios, not a kept count
        variants.append(Variant("pdrop", make_dart_config(K=args.k, method="pdrop")))
    return variants


def format_table(results: list[Result], seq_len: int, batch_size: int = 1) -> str:
    lines = [
        f"{'variant':<12} {'tokens/row':>10} {'prefill ms':>11} {'speed-up':>9} {'ideal':>7} {'meas/ideal':>10} "
        f"{'select ms':>10} {'select %':>9} {'KV cache MiB':>13}"
    ]
    for r in results:
        share = 100 * r.selection_seconds / r.median_seconds
        lines.append(
            f"{r.name:<12} {r.seq_len_after_k:>10} {1000 * r.median_seconds:>11.1f} {r.measured_speedup:>8.2f}x "
            f"{r.ideal_speedup:>6.2f}x {r.measured_speedup / r.ideal_speedup:>10.2f} {1000 * r.selection_seconds:>10.2f} "
            f"{share:>8.2f}% {r.kv_cache_bytes / 2**20:>13.1f}"
        )
    lines.append(f"(prompt: {seq_len} tokens x batch {batch_size}; tokens/row: sequence length per row seen by "
                 "the last layers (after the last pruning stage); ideal: the FLOP ratio of layer_flops over every "
                 "layer's own length; times and KV cache for the whole batch)")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILY_DEFAULTS), default="llava",
                        help="llava: LLaVA-1.5-7B's layout; qwen2_vl: Qwen2-VL-7B's text model (GQA, M-RoPE)")
    parser.add_argument("--layers", type=int, help="default: 32 (llava), 28 (qwen2_vl)")
    parser.add_argument("--heads", type=int, help="default: 32, 28")
    parser.add_argument("--kv-heads", type=int, help="key/value heads; default: --heads (llava), 4 (qwen2_vl)")
    parser.add_argument("--hidden-size", type=int, help="default: 1024, 896")
    parser.add_argument("--intermediate-size", type=int, help="default: the 7B models' ratios, 2752 and 4736")
    parser.add_argument("--k", type=int, default=2, help="DART's pruned layer K")
    parser.add_argument("--kept", type=int, nargs="+", default=[128, 64], help="max_num_trunction values (llava)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.778], help="reduction ratios (qwen2_vl)")
    parser.add_argument("--methods", nargs="+", default=["dart", "random"], choices=method_names(),
                        help="pruning methods to time beside vanilla (pdrop uses its stages, not --kept)")
    parser.add_argument("--prefix-tokens", type=int, help="default: 35, 15")
    parser.add_argument("--image-tokens", type=int, help="default: 576, 1024")
    parser.add_argument("--suffix-tokens", type=int, help="default: 25, 25")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per prefill call")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--attn-implementation", default="sdpa", choices=["eager", "sdpa", "flash_attention_2"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    for name, value in FAMILY_DEFAULTS[args.family].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.kv_heads = args.kv_heads or args.heads
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available: benchmarking on the CPU", file=sys.stderr)
        args.device = "cpu"
    parse_dart_config(make_dart_config(K=args.k), args.layers)  # fail early on an impossible K
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    seq_len = args.prefix_tokens + args.image_tokens + args.suffix_tokens
    print(
        f"prefill benchmark: {args.family}, {args.layers} layers, {args.heads} heads ({args.kv_heads} key/value), "
        f"hidden {args.hidden_size}, "
        f"{args.attn_implementation}, {args.device}, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
        f"{args.repeats} timed rounds after {args.warmup} warm-up"
    )
    results = run(args)
    print(format_table(results, seq_len, args.batch_size))
    by_name = {r.name: r for r in results}
    headline_variant = next((v for v in variants_of(args) if v.name.startswith("dart-")), None)
    headline = by_name.get(headline_variant.name) if headline_variant else None
    if headline is not None:
        image_kept = args.image_tokens - (seq_len - headline.seq_len_after_k)
        expected = dart_kept_count(args.image_tokens, parse_dart_config(headline_variant.dart_config))
        print(
            f"summary: DART keeping {image_kept}/{args.image_tokens} image tokens (expected {expected}) at batch "
            f"{args.batch_size}: prefill "
            f"{headline.measured_speedup:.2f}x faster (ideal {headline.ideal_speedup:.2f}x, ratio "
            f"{headline.measured_speedup / headline.ideal_speedup:.2f}); selection "
            f"{100 * headline.selection_seconds / headline.median_seconds:.2f}% of the pruned prefill"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": [dataclasses.asdict(r) for r in results]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
