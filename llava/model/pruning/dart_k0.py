"""DART before the language model (K = 0): a documented variant, not the paper's default (K = 2).

DART's selection (`dart.select_image_tokens`, unchanged: pivots, per-pivot budget, least-similar tokens) run
on the spliced input embeddings, before decoder layer 0, so every layer runs on the shorter sequence. Kept
tokens keep their original positions, as at any K.

What DART reads at layer K-1 is taken from the embeddings:
- similarity: the embeddings themselves, for layer K-1's output through the final norm (no layer has run, and
  the final norm belongs to the last layer's output, not to the input);
- pivots: the L1 norm of the embeddings, for that of layer K-1's keys. Layer 0's own keys (its input norm,
  k_proj and RoPE on the embeddings) would be computable, but an engine that cannot prune between layers
  (one that shortens the embeddings it hands the language model) has the embeddings and nothing of the
  layers: this variant is the one such an engine can run, so it reads only what such an engine has.
The budget is DART's for the same settings (`dart_kept_count`); DART_config['K'] is not read.
"""

from __future__ import annotations

import torch

from llava.model.pruning.config import PruningSettings
from llava.model.pruning.dart import check_release_hints, select_image_tokens
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, register_method


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    return select_image_tokens(inputs.embeddings, inputs.embeddings, inputs.span, cfg, inputs.llava_next,
                               inputs.text_positions, inputs.padding)


METHOD = register_method(PruningMethod(
    name="dart_k0",
    select=select,
    inputs=frozenset({PruningInput.EMBEDDINGS}),
    summary="DART on the input embeddings, before layer 0 (a variant; the paper prunes before layer 2)",
    layers=lambda cfg: (0,),
    check_splice=check_release_hints,
))
