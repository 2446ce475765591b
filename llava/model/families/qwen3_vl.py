"""Qwen3-VL checkpoints in the hub layout (`model_type: qwen3_vl`, e.g. `Qwen/Qwen3-VL-8B-Instruct`; the MoE ones,
`qwen3_vl_moe` such as `Qwen/Qwen3-VL-30B-A3B-Instruct`, alike).

Everything a user sees works as for Qwen2-VL / Qwen2.5-VL (`llava.model.families.qwen_vl`): prompts through the
checkpoint's chat template (Qwen3-VL's has no default system turn) and processor, images first, the DART budget
the reduction ratio alone. What differs is inside the model: 16-pixel patches (a merged token covers 32 x 32
pixels), q / k norms and interleaved M-RoPE in the text attention, and DeepStack, which the pruned model follows
(`llava.model.language_model.qwen_vl.Qwen3VLTextModelWithPruning`). The released `generation_config.json` turns
sampling on; our commands pass `do_sample` explicitly, so temperature 0 is greedy.
"""

from __future__ import annotations

from llava.model.families.base import BenchmarkShape
from llava.model.families.qwen_vl import QwenVLFamily


class Qwen3VLFamily(QwenVLFamily):
    name = "qwen3_vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    hub_name_pattern = r"qwen3-vl"
    # Qwen3-VL-8B's text model (36 layers, GQA 32 / 8) at width 1024 (the 8B's MLP ratio of 3), and the 1024
    # image tokens of a 1024 x 1024 image at 32 pixels per merged token.
    benchmark_shape = BenchmarkShape("qwen3_vl", "Qwen3-VL-8B's text model (GQA, q/k norms, interleaved M-RoPE)",
                                     layers=36, heads=32, kv_heads=8, hidden_size=1024, intermediate_size=3072,
                                     prefix_tokens=4, image_tokens=1024, suffix_tokens=25)

    def benchmark_model(self, args):
        """The text model alone (the prompt comes as spliced embeddings; DeepStack needs the tower, so it is
        not part of the timed model: three additions of image-sized tensors, negligible against the layers)."""
        from transformers import Qwen3VLTextConfig

        from llava.model.language_model.qwen_vl import Qwen3VLTextModelWithPruning

        head_dim = args.hidden_size // args.heads
        frequencies = head_dim // 2
        # The 8B's interleaved sections are 24 / 20 / 20 of its 64 frequencies, scaled to this head_dim.
        spatial = frequencies * 20 // 64
        sections = [frequencies - 2 * spatial, spatial, spatial]
        config = Qwen3VLTextConfig(
            vocab_size=32000, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
            num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
            head_dim=head_dim, max_position_embeddings=262144, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": sections,
                             "mrope_interleaved": True},
        )
        config._attn_implementation = args.attn_implementation
        return Qwen3VLTextModelWithPruning(config)
