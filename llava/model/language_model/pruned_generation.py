"""What every generation class on transformers' own multimodal classes adds for pruning (Qwen2-VL, Qwen2.5-VL,
llava-hf): the image spans read from the prompt at prefill, and the call's `PruningRecord` passed down to the text
model, where the engine's hooks take them (`llava.model.pruning.attach`)."""

from __future__ import annotations

import inspect

import torch

from llava.model.pruning.attach import PRUNING_CALL_KWARGS
from llava.model.pruning.record import ImageSpan, PruningRecord


def vision_spans(input_ids: torch.Tensor, token_ids: tuple[int, ...]) -> list[list[ImageSpan]]:
    """Per row of (B, L) `input_ids`, the (start, length) of each run of the placeholder tokens `token_ids`."""
    placeholder = torch.isin(input_ids, torch.tensor(token_ids, device=input_ids.device)).int()
    # +1 where a run starts, -1 just after it ends (a zero column on each side closes runs at the edges).
    edges = torch.nn.functional.pad(placeholder, (1, 1)).diff(dim=1)
    spans = []
    for row in edges.cpu():
        starts, ends = (row == 1).nonzero().flatten().tolist(), (row == -1).nonzero().flatten().tolist()
        spans.append([(start, end - start) for start, end in zip(starts, ends)])
    return spans


def pruned_forward(library_class):
    """The generation class's forward: the library's, with the image spans read from `input_ids` at prefill (the
    runs of the tokens `self.span_token_ids()` names) and the call's `PruningRecord` passed down. Its signature is
    the library's plus ours, since `generate` checks its arguments against the signature."""
    library_forward = library_class.forward

    def forward(self, input_ids=None, *, pruning_record: PruningRecord | None = None,
                image_spans: list[list[ImageSpan]] | None = None, **kwargs):
        cache = kwargs.get("past_key_values")
        prefill = cache is None or cache.get_seq_length() == 0
        if prefill and image_spans is None and input_ids is not None:
            image_spans = vision_spans(input_ids, self.span_token_ids())
        record = pruning_record if pruning_record is not None else PruningRecord()
        return library_forward(self, input_ids=input_ids, pruning_record=record,
                               image_spans=image_spans if prefill else None, **kwargs)

    parameters = list(inspect.signature(library_forward).parameters.values())
    variadic = [p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
    ours = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in PRUNING_CALL_KWARGS]
    forward.__signature__ = inspect.Signature([p for p in parameters if p not in variadic] + ours + variadic)
    forward.__doc__ = (
        f"`{library_class.__name__}.forward`; `pruning_record` carries this call's settings in and its kept "
        "positions out. The image spans are read from `input_ids` at prefill (pass `image_spans` with `inputs_embeds`)."
    )
    return forward
