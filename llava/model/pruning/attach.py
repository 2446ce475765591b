"""The pruning engine on a transformers text model, by hooks: the library's `forward` runs as it is written.

`attach_engine(text_model, backend)` registers three kinds of hooks on a text model laid out as transformers'
decoders are (`text_model.layers`, each layer called with its input first and `attention_mask`,
`position_embeddings`, `position_ids`, `past_key_values` as keyword arguments):

- a forward pre-hook on the text model takes the call's pruning arguments (`image_spans`, `pruning_record`) out
  of its keyword arguments, so the library's forward never sees them, and opens the call;
- a forward pre-hook on each decoder layer gives the layer's input and keyword arguments to the call's
  `PruningHook` (`llava.model.pruning.engine`). From the first pruning layer on, the layers get the kept tokens,
  their position embeddings and the mask of the shorter sequence instead of what the library's loop passes;
- a forward hook on the text model, run even when the forward raises, closes the call.

Calls are kept per thread, on a stack: concurrent generate calls on one model (the serving worker) and nested
calls never share state. The decoder layers checkpoint their `forward`, not their `__call__`, so under gradient
checkpointing the hooks run once per layer and the backward pass replays the pruned inputs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import torch

from llava.model.pruning.engine import PruningBackend, PruningHook
from llava.model.pruning.record import ImageSpan, PruningRecord

# Keyword arguments of ours that travel with a call down to the text model.
PRUNING_CALL_KWARGS = ("image_spans", "pruning_record")
# What the engine replaces in a decoder layer's keyword arguments from the first pruning layer on.
REPLACED_LAYER_KWARGS = ("attention_mask", "position_embeddings", "position_ids")


@dataclasses.dataclass
class _Call:
    """One forward call of the text model: what the caller passed, and the engine once the first layer runs."""

    record: PruningRecord
    image_spans: list[list[ImageSpan]] | None
    attention_mask: torch.Tensor | None
    hook: PruningHook | None = None
    replaced: dict[str, Any] | None = None  # the layer keyword arguments from the first pruning layer on


class EngineAttachment:
    """The hooks of one text model. `backend`: builds the engine's view of the model for a call (it may read
    settings that change after construction). `check_prunable`: raises when this model cannot prune now;
    called before the first layer of a call that will prune."""

    def __init__(self, text_model: torch.nn.Module, backend: Callable[[], PruningBackend],
                 check_prunable: Callable[[], None] | None = None):
        self.backend = backend
        self.check_prunable = check_prunable
        self._local = threading.local()
        text_model.register_forward_pre_hook(self._open_call, with_kwargs=True)
        text_model.register_forward_hook(self._close_call, with_kwargs=True, always_call=True)
        for index, layer in enumerate(text_model.layers):
            layer.register_forward_pre_hook(self._layer_hook(index), with_kwargs=True)

    def _calls(self) -> list[_Call]:
        if not hasattr(self._local, "calls"):
            self._local.calls = []
        return self._local.calls

    def current_record(self) -> PruningRecord | None:
        """The record of this thread's innermost open call of the text model (None outside a call): what the
        model's own code between layers (Qwen3-VL's DeepStack) reads to follow the kept tokens."""
        calls = self._calls()
        return calls[-1].record if calls else None

    def _open_call(self, module, args, kwargs):
        record = kwargs.pop("pruning_record", None)
        image_spans = kwargs.pop("image_spans", None)
        mask = kwargs.get("attention_mask")
        padding_mask = mask if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None
        self._calls().append(_Call(record if record is not None else PruningRecord(), image_spans, padding_mask))
        return args, kwargs

    def _close_call(self, module, args, kwargs, output):
        self._calls().pop()
        return output

    def _layer_hook(self, index: int):
        def before_layer(layer, args, kwargs):
            return self._before_layer(index, args, kwargs)

        return before_layer

    def _before_layer(self, index: int, args, kwargs):
        calls = self._calls()
        if not calls:  # a layer run on its own, outside a call of the text model
            return None
        call = calls[-1]
        hidden_states = args[0]
        if call.hook is None:
            call.hook = self._start_engine(call, hidden_states, kwargs)
        given = call.replaced if call.replaced is not None else {key: kwargs.get(key) for key in REPLACED_LAYER_KWARGS}
        hidden_states, layer_kwargs = call.hook(index, hidden_states, given)
        if layer_kwargs is not given:
            call.replaced = layer_kwargs
        if call.replaced is None:
            return None
        return (hidden_states, *args[1:]), {**kwargs, **call.replaced}

    def _start_engine(self, call: _Call, hidden_states: torch.Tensor, layer_kwargs: dict[str, Any]) -> PruningHook:
        cache = layer_kwargs.get("past_key_values")
        hook = PruningHook(self.backend(), call.record, image_spans=call.image_spans,
                           attention_mask=call.attention_mask, cache=cache,
                           past_length=cache.get_seq_length() if cache is not None else 0,
                           hidden_states=hidden_states)
        if hook.stages and hook.past_length == 0 and self.check_prunable is not None:
            self.check_prunable()  # before any layer has run (and filled the caller's cache)
        return hook


def attach_engine(text_model: torch.nn.Module, backend: Callable[[], PruningBackend],
                  check_prunable: Callable[[], None] | None = None) -> EngineAttachment:
    """Attach the pruning engine to `text_model` (see the module docstring); returns the attachment."""
    return EngineAttachment(text_model, backend, check_prunable)
