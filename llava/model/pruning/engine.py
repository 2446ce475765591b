"""The pruning engine: the bookkeeping every model family and every method share.

One `PruningHook` serves one forward call of a text model and is called before each decoder layer with the
layer's input and keyword arguments (`llava.model.pruning.attach` does this with hooks on the library's model):

    hook = PruningHook(backend, record, image_spans=..., attention_mask=..., cache=..., past_length=...,
                       hidden_states=inputs_embeds)
    for idx, layer in enumerate(layers):
        hidden_states, layer_kwargs = hook(idx, hidden_states, layer_kwargs)
        hidden_states = layer(hidden_states, **layer_kwargs)

At prefill, before each of the method's pruning layers (layer K for DART), the hook runs the method on every
image span of every sample, gathers the kept tokens (rows that keep fewer tokens are left-padded and the
padding is masked) with their position embeddings (original positions) and builds the mask of the shorter
sequence. At each decoding step it reuses the prefill's kept sets from the record and only rebuilds, at each
pruning layer, the mask for the layers from there on, whose cache is shorter.
A method that `renumbers_positions` (PyramidDrop and SparseVLM as released; by default its settings say so) has
the kept tokens renumbered consecutively after each stage instead, and each decoding step's position lowered by
the tokens dropped (less those inserted) so far in that stage's layers (`PrunedStage.position_shift`), so that in
every layer a decoded token's position is that layer's cache length (for a row without padding), where the
backend `renumbers_positions`; elsewhere the original positions stay, with a one-time warning.
Where positions are renumbered, a method's `select` may also insert new tokens (`Selection`: SparseVLM's
recycled clusters) right after a span's kept tokens: the shorter sequence is then the kept tokens with the
inserted ones in their place, numbered consecutively like the rest; their keys and values are cached in the
later layers like any kept token's, later stages rank them with their image's tokens, and the record marks them
(`PrunedStage.inserted`).
The backend (`PruningBackend`) supplies only what differs between model families.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import torch

from llava.model.pruning.config import PruningSettings, parse_pruning_settings, pruning_switched_off
from llava.model.pruning.methods import (
    PruningInput,
    PruningMethod,
    Selection,
    SpanInputs,
    SplicedSample,
    get_method,
)
from llava.model.pruning.record import USE_MODEL_CONFIG, ImageSpan, PrunedStage, PruningRecord

logger = logging.getLogger(__name__)
_reported: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _reported:
        _reported.add(message)
        logger.warning(message)


class PruningBackend(Protocol):
    """What a model family supplies to the engine.

    config: the model config (`num_hidden_layers`; a method's `check_splice` may read more, e.g. DART's
        `text_length`).
    llava_next: the sequence follows LLaVA-1.6's budget rule (anyres images).
    reduces_before_llm: the family's splice applies the methods that work before the language model.
    unused_settings_keys: DART_config keys this family never reads, which its release's dicts may leave out.
    renumbers_positions (optional, default False): the backend has `position_embeddings(hidden_states,
        position_ids)`, the layers' rotary (cos, sin) for (B, L) position ids, so kept tokens can be renumbered.
    """

    config: Any
    llava_next: bool
    reduces_before_llm: bool
    unused_settings_keys: tuple[str, ...]

    def default_settings(self) -> PruningSettings | Mapping[str, Any] | None:
        """The model-wide settings, used when the call's record leaves them unset (`DART_config`)."""

    def adapt_settings(self, settings: PruningSettings) -> PruningSettings:
        """The settings as this family applies them (e.g. a budget rule of its own); usually unchanged."""

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The model's last norm, applied to (B, L, D) hidden states."""

    def layer_keys(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings: Any, cache) -> torch.Tensor:
        """Layer `layer_idx`'s key states after RoPE, (B, L, kv_heads * head_dim): from the cache or recomputed."""

    def last_token_attention(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings: Any,
                             keys: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Layer `layer_idx`'s attention weights of each row's last token, averaged over heads, (B, L), with
        `keys` that layer's key states and `valid` (B, L) the real tokens (None: all)."""

    def attention_matrix(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings: Any,
                         keys: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Every row of layer `layer_idx`'s attention weights, averaged over heads, causal, (B, L, L)."""

    def causal_mask(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, cache, layer_idx: int) -> Any:
        """The mask of layers >= layer_idx for `hidden_states`, a 2-D padding mask over their own cache + query."""


def spans_per_row(image_spans: list[list[ImageSpan]], batch: int) -> list[list[ImageSpan]]:
    """One span list per batch row. Beam search / num_return_sequences repeat each prompt in place
    (repeat_interleave) after the spans were computed, so the spans are repeated the same way."""
    if len(image_spans) == batch:
        return image_spans
    if len(image_spans) == 0 or batch % len(image_spans):
        raise ValueError(f"got image spans for {len(image_spans)} samples but the batch has {batch} rows")
    return [spans for spans in image_spans for _ in range(batch // len(image_spans))]


def call_settings(record: PruningRecord | None, backend: PruningBackend) -> PruningSettings | None:
    """The pruning settings of a call: the record's own if it sets them, else the model-wide ones."""
    raw = getattr(record, "dart_config", USE_MODEL_CONFIG)
    if raw is USE_MODEL_CONFIG:
        raw = backend.default_settings()
    if raw is None or pruning_switched_off(raw):
        return None
    settings = parse_pruning_settings(raw, backend.config.num_hidden_layers,
                                      unused_keys=getattr(backend, "unused_settings_keys", ()))
    return backend.adapt_settings(settings)


def pad_rows_left(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack 1-D index rows of different lengths: (B, L') left-padded, and the validity mask (None if equal).

    Padding repeats a row's first index, so gathering through it reads a real token (masked afterwards).
    """
    longest = max(row.numel() for row in rows)
    if all(row.numel() == longest for row in rows):
        return torch.stack(list(rows)), None
    keep = torch.stack([torch.cat([row[:1].expand(longest - row.numel()), row]) for row in rows])
    valid = torch.stack([
        torch.arange(longest, device=row.device) >= longest - row.numel() for row in rows
    ])
    return keep, valid


def gather_tokens(embeddings: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows `keep` (B, L') of per-token tensors laid out (B or 1, L, ...), such as the rotary cos / sin the
    layers take: a kept token keeps the position embedding of its original position."""
    batch, kept = keep.shape
    expanded = embeddings.expand(batch, *embeddings.shape[1:])
    index = keep.to(embeddings.device).view(batch, kept, *([1] * (embeddings.ndim - 2)))
    return expanded.gather(1, index.expand(batch, kept, *embeddings.shape[2:]))


class PruningHook:
    """One forward call's pruning; call it before every decoder layer with that layer's input and kwargs.

    image_spans: per sample (or per prompt, repeated for beams), the (start, length) of each image.
    attention_mask: the call's 2-D padding mask over cache + query (None: no padding); a 4-D mask is
        passed through unchanged to the layers before K and not used for the pruned ones.
    """

    def __init__(self, backend: PruningBackend, record: PruningRecord, *, image_spans, attention_mask, cache,
                 past_length: int, hidden_states: torch.Tensor):
        self.backend = backend
        self.record = record
        self.cache = cache
        self.attention_mask = attention_mask if attention_mask is not None and attention_mask.ndim == 2 else None
        self.past_length = past_length
        self.settings: PruningSettings | None = None
        self._layer_input: torch.Tensor | None = None
        # When a method renumbers the kept tokens' positions (PyramidDrop as released): at decoding, the positions
        # the library gave the layers; at prefill, each row's first real token's position and its real tokens.
        self._positions: torch.Tensor | None = None
        self._renumber_from: tuple[torch.Tensor, torch.Tensor] | None = None
        # At prefill, the sequence the next stage prunes: its absolute positions (None: all of them), which of
        # them are real tokens (None: all) and which were inserted by a method (None: none).
        self._current: torch.Tensor | None = None
        self._current_valid: torch.Tensor | None = None
        self._current_inserted: torch.Tensor | None = None
        # The prefill's input embeddings, for methods that read them (`PruningInput.EMBEDDINGS`).
        self._embeddings = hidden_states if past_length == 0 else None
        batch, length = hidden_states.shape[:2]
        if past_length == 0:
            self._current_valid = self.attention_mask.bool() if self.attention_mask is not None else None
            record.start_prefill(length)
            record.image_spans = spans_per_row(image_spans, batch) if image_spans is not None else None
            if record.image_reductions is not None:
                record.image_reductions = spans_per_row(record.image_reductions, batch)
            self.stages = self._prefill_stages(record, length)
        else:
            self.stages = self._decoding_stages(record, cache, past_length)

    def _prefill_stages(self, record: PruningRecord, length: int) -> tuple[int, ...]:
        self.settings = call_settings(record, self.backend)
        spans = record.image_spans or []
        has_image = any(len(row) > 0 for row in spans)
        if self.settings is None or not (has_image or record.forced_keep is not None) or length < 2:
            return ()
        method = get_method(self.settings.method)
        if method.before_llm:
            if record.forced_keep is not None:
                raise ValueError(f"forced_keep sets what the language model keeps; {method.name!r} reduces the "
                                 "image features before it")
            if record.image_reductions is None and has_image:
                where = getattr(self.backend, "before_llm_hint", None) or (
                    "pass `images` to generate/forward, or the call's pruning_record to "
                    "prepare_multimodal_inputs" if self.backend.reduces_before_llm else
                    "this model family does not support such methods yet")
                raise ValueError(f"pruning method {method.name!r} reduces the image features before the language "
                                 f"model, but they reached it unreduced: {where}")
            return ()
        if record.forced_keep is not None:  # a forced kept set replaces the method: one stage, at K
            return (self.settings.K,)
        layers = tuple(method.layers(self.settings))
        depth = self.backend.config.num_hidden_layers
        # Before layer 0 there is no layer K-1 to read: only the input embeddings exist there.
        lowest = 0 if method.inputs <= {PruningInput.EMBEDDINGS} else 1
        if not layers or list(layers) != sorted(set(layers)) or layers[0] < lowest or layers[-1] >= depth:
            raise ValueError(f"pruning method {self.settings.method!r} asks for layers {layers}; they must be "
                             f"ascending, distinct and in {lowest}..{depth - 1}")
        return layers

    @staticmethod
    def _decoding_stages(record: PruningRecord, cache, past_length: int) -> tuple[int, ...]:
        if record.pruned:
            return tuple(stage.layer for stage in record.stages)
        # A cache from a pruned prefill whose record was not passed. Pruning shortens the last layers, so the
        # last layer alone tells (one check per step, not one per layer).
        if cache is not None and cache.get_seq_length(len(cache.layers) - 1) != past_length:
            raise ValueError(
                "the KV cache was pruned at prefill but no pruning_record was passed; pass the "
                "PruningRecord of the prefill call to every decoding step"
            )
        return ()

    def __call__(self, layer_idx: int, hidden_states: torch.Tensor, layer_kwargs: dict[str, Any]):
        if not self.stages or layer_idx < self.stages[0] - 1:
            return hidden_states, layer_kwargs
        if layer_idx in self.stages:
            stage = self.stages.index(layer_idx)
            if self.past_length == 0:
                hidden_states, layer_kwargs = self._prune_at_prefill(stage, hidden_states, layer_kwargs)
            else:
                kept = self.record.stages[stage]
                if stage == 0:  # the library's own layer kwargs, before any stage replaced them
                    self._positions = _given_positions(layer_kwargs, hidden_states.shape[1], self.past_length,
                                                       hidden_states.device)
                layer_kwargs = self._pruned_kwargs(hidden_states, layer_kwargs, layer_idx,
                                                   self._segment_mask(kept, hidden_states))
                if kept.position_shift is not None:  # the renumbered prefill continues: the drop comes off
                    shifted = self._positions - kept.position_shift.to(self._positions.device)[:, None]
                    layer_kwargs["position_embeddings"] = self.backend.position_embeddings(hidden_states, shifted)
        if layer_idx + 1 in self.stages:
            self._layer_input = hidden_states  # the next pruning layer's input, in case its keys must be recomputed
        return hidden_states, layer_kwargs

    # -- prefill ----------------------------------------------------------------------------------------

    def _prune_at_prefill(self, stage: int, hidden_states: torch.Tensor, layer_kwargs: dict[str, Any]):
        record, layer = self.record, self.stages[stage]
        batch, length, dim = hidden_states.shape
        start = time.perf_counter()
        if stage == 0:  # before selecting: a method may insert tokens only where positions are renumbered
            self._renumber_from = self._renumbering(layer_kwargs, batch, length, hidden_states.device)
        if record.forced_keep is not None:
            # A forced kept set is the only stage: its rows index the prefill sequence itself.
            rows = [_Row(row, row) for row in self._forced_rows(batch, length, hidden_states.device)]
        else:
            rows = self._selected_rows(stage, hidden_states, layer_kwargs.get("position_embeddings"))
        # Rows index the current sequence, followed by the row's inserted tokens (index >= length); the record
        # keeps absolute positions of the prefill sequence.
        keep, valid = pad_rows_left([row.index for row in rows])
        absolute, _ = pad_rows_left([row.absolute for row in rows])
        new = keep >= length
        inserted = new if bool(new.any()) else None
        if self._current_inserted is not None:
            carried = self._current_inserted.gather(1, keep.clamp(max=length - 1)) & ~new
            inserted = carried if inserted is None else inserted | carried
        self._current = absolute
        self._current_valid = _and_valid(
            self.attention_mask.bool().gather(1, absolute) if self.attention_mask is not None else None, valid
        )
        self._current_inserted = inserted
        kept = PrunedStage(layer, absolute, valid, inserted=inserted)

        if bool(new.any()):
            if self._renumber_from is None:
                raise ValueError(f"pruning method {self.settings.method!r} inserted tokens into a sequence whose "
                                 "positions are not renumbered: its select must not (SpanInputs.renumbered)")
            extra = max(row.inserted.shape[0] for row in rows if row.inserted is not None)
            source = torch.cat([hidden_states, hidden_states.new_zeros(batch, extra, dim)], dim=1)
            for b, row in enumerate(rows):
                if row.inserted is not None:
                    source[b, length : length + row.inserted.shape[0]] = row.inserted.to(source)
        else:
            source = hidden_states
        hidden_states = source.gather(1, keep.unsqueeze(-1).expand(-1, -1, dim))
        kwargs = self._pruned_kwargs(hidden_states, layer_kwargs, layer, self._segment_mask(kept, hidden_states))
        if self._renumber_from is not None:
            kwargs["position_embeddings"], shift = self._renumbered(hidden_states)
            kept = PrunedStage(layer, absolute, valid, shift, inserted)
        else:  # kept tokens keep their original positions, so RoPE sees what it would see unpruned
            kwargs["position_embeddings"] = tuple(gather_tokens(e, keep) for e in layer_kwargs["position_embeddings"])
        record.stages.append(kept)
        record.selection_seconds += time.perf_counter() - start
        return hidden_states, kwargs

    def _renumbering(self, layer_kwargs: dict[str, Any], batch: int, length: int, device):
        """At the first stage: None when kept tokens keep their original positions, else each row's first real
        token's position (B,) and its count of real prefill tokens (B,), which renumbering starts from."""
        wants = get_method(self.settings.method).renumbers_positions(self.settings)
        if not wants or self.record.forced_keep is not None:
            return None
        if not getattr(self.backend, "renumbers_positions", False):
            warn_once(f"pruning method {self.settings.method!r} renumbers the kept tokens' positions, which "
                      f"{type(self.backend).__name__} cannot (no one position per token, e.g. M-RoPE): kept "
                      "tokens keep their original positions")
            return None
        positions = _given_positions(layer_kwargs, length, 0, device).expand(batch, length)
        if self.attention_mask is None:
            return positions[:, 0], torch.full((batch,), length, device=positions.device)
        real = self.attention_mask[:, :length].to(positions.device).bool()
        first = real.long().argmax(dim=1, keepdim=True)  # rows are left-padded
        return positions.gather(1, first).squeeze(1), real.sum(dim=1)

    def _renumbered(self, hidden_states: torch.Tensor):
        """The kept sequence's position embeddings with its real tokens (inserted ones included) numbered
        consecutively from the row's first (padding takes that first position, masked anyway), and per row the
        real prefill tokens dropped so far less the tokens inserted: with it a decoding step's position in the
        stage's layers is the row's real tokens in those layers' cache, 1_0 SparseVLM's rule."""
        start, prefill_real = self._renumber_from
        batch, length = hidden_states.shape[:2]
        real = (self._current_valid.to(start.device).long() if self._current_valid is not None else
                torch.ones(batch, length, dtype=torch.long, device=start.device))
        positions = start[:, None] + (real.cumsum(dim=1) - 1).clamp(min=0)
        return self.backend.position_embeddings(hidden_states, positions), prefill_real - real.sum(dim=1)

    def _selected_rows(self, stage: int, hidden_states: torch.Tensor, position_embeddings) -> list[torch.Tensor]:
        cfg = self.settings
        method = get_method(cfg.method)
        layer = self.stages[stage]
        normed = self.backend.final_norm(hidden_states) if PruningInput.NORMED in method.inputs else None
        states = hidden_states if PruningInput.HIDDEN_STATES in method.inputs else None
        keys = attention = matrix = embeddings = None
        if method.inputs & {PruningInput.KEYS, PruningInput.PREVIOUS_LAYER_ATTENTION,
                            PruningInput.PREVIOUS_LAYER_ATTENTION_MATRIX}:
            keys = self.backend.layer_keys(layer - 1, self._layer_input, position_embeddings, self.cache)
        if PruningInput.PREVIOUS_LAYER_ATTENTION_MATRIX in method.inputs:
            matrix = self.backend.attention_matrix(layer - 1, self._layer_input, position_embeddings, keys,
                                                   self._current_valid)
        if PruningInput.EMBEDDINGS in method.inputs:
            embeddings = self._embeddings
            if self._current is not None:
                embeddings = embeddings.gather(1, self._current.unsqueeze(-1).expand(-1, -1, embeddings.shape[-1]))
        if PruningInput.PREVIOUS_LAYER_ATTENTION in method.inputs:
            attention = self.backend.last_token_attention(layer - 1, self._layer_input, position_embeddings, keys,
                                                          self._current_valid)
        elif PruningInput.PRUNING_LAYER_ATTENTION in method.inputs:
            own_keys = self.backend.layer_keys(layer, hidden_states, position_embeddings, None)
            attention = self.backend.last_token_attention(layer, hidden_states, position_embeddings, own_keys,
                                                          self._current_valid)
        batch, length = hidden_states.shape[:2]
        rows = []
        for b in range(batch):
            original = self.record.image_spans[b] if self.record.image_spans else []
            valid = self._current_valid[b] if self._current_valid is not None else None
            if stage == 0:
                self._check_splice(method, original, length, valid)
                spans = original
            else:
                spans = _spans_in(self._current[b], valid, original)
            per_sample = {
                "normed": normed[b] if normed is not None else None,
                "keys": keys[b] if keys is not None else None,
                "attention": attention[b] if attention is not None else None,
                "attention_matrix": matrix[b] if matrix is not None else None,
                "embeddings": embeddings[b] if embeddings is not None else None,
                "hidden_states": states[b] if states is not None else None,
            }
            rows.append(self._select_row(method, cfg, stage, spans, [n for _, n in original], length, valid,
                                         hidden_states.device, per_sample, row=b))
        return rows

    def _select_row(self, method, cfg, stage, spans, original_lengths, length, valid_tokens, device,
                    per_sample, row: int = 0) -> _Row:
        """Sample's kept tokens in order: its text (not its padding), plus each image's selection, and after an
        image's kept tokens the tokens the method inserted there."""
        text = torch.ones(length, dtype=torch.bool, device=device)
        for start, count in spans:
            text[start : start + count] = False
        if valid_tokens is not None:
            text &= valid_tokens.to(device)
        kept = [text.nonzero().flatten()]
        inserted, anchors = [], []
        padding = int(valid_tokens.long().argmax()) if valid_tokens is not None else 0  # rows are left-padded
        renumbered = self._renumber_from is not None
        for index, ((start, count), original_length) in enumerate(zip(spans, original_lengths)):
            if count == 0:
                continue
            text_after = text[start + count :].nonzero().flatten() + start + count
            image_embeddings = None
            first = self.record.image_spans[row][index][0]  # the image's place in the prefill sequence
            if per_sample.get("embeddings") is not None:
                image_embeddings = self._embeddings[row, first : first + original_length]
            inputs = SpanInputs((start, count), text_after, llava_next=self.backend.llava_next, stage=stage,
                                padding=padding, original_length=original_length,
                                image_embeddings=image_embeddings, renumbered=renumbered, **per_sample)
            selected = method.select(inputs, cfg)
            if isinstance(selected, Selection):
                if selected.inserted is not None and selected.inserted.shape[0] > 0:
                    inserted.append(selected.inserted)
                    # Sorted between the span's last token (key 2 * (start + count - 1)) and what follows it.
                    anchors.append((2 * (start + count - 1) + 1, first + original_length - 1,
                                    selected.inserted.shape[0]))
                selected = selected.kept
            kept.append(selected.to(device))
        order = torch.cat(kept)
        current = self._current[row] if self._current is not None else torch.arange(length, device=device)
        absolute = current.to(device)[order]
        if not inserted:
            order, sort = order.sort()
            return _Row(order, absolute[sort])
        keys = [order * 2]
        for key, anchor, count in anchors:
            keys.append(torch.full((count,), key, dtype=order.dtype, device=device))
            absolute = torch.cat([absolute, torch.full((count,), anchor, dtype=absolute.dtype, device=device)])
        index = torch.cat([order, torch.arange(length, length + sum(c for _, _, c in anchors), device=device)])
        sort = torch.cat(keys).sort(stable=True).indices  # a span's inserted tokens in the method's order
        return _Row(index[sort], absolute[sort], torch.cat(inserted))

    def _forced_rows(self, batch: int, length: int, device) -> list[torch.Tensor]:
        forced = self.record.forced_keep
        if isinstance(forced, torch.Tensor):
            forced = [forced] * batch if forced.ndim == 1 else list(forced.expand(batch, -1))
        if len(forced) != batch:
            raise ValueError(f"forced_keep has {len(forced)} rows but the batch has {batch}")
        rows = []
        for row in forced:
            row = row.to(device)
            rows.append(torch.cat([row, torch.arange(int(row.max()) + 1, length, device=device)]))
        return rows

    def _check_splice(self, method: PruningMethod, spans: list[ImageSpan], length: int, valid_tokens) -> None:
        """The method's checks of its settings' hints against the spliced prompt, each message reported once."""
        if method.check_splice is None:
            return
        padding = 0 if valid_tokens is None else int(valid_tokens.long().argmax())  # left padding, if any
        tokens = length if valid_tokens is None else int(valid_tokens.sum())
        sample = SplicedSample([(start - padding, count) for start, count in spans], tokens, self.backend.config)
        for message in method.check_splice(sample, self.settings):
            warn_once(message)

    # -- the masks of the pruned layers --------------------------------------------------------------------

    def _segment_mask(self, kept: PrunedStage, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """The 2-D mask over the cache of the layers from `kept.layer` on: the stage's kept prefill tokens
        (padding of the input and of ragged rows masked), then any generated ones."""
        record = self.record
        keep = kept.keep.to(hidden_states.device)
        if self.attention_mask is not None:
            prefill = _and_valid(self.attention_mask[:, : record.prefill_length].gather(1, keep), kept.keep_valid)
            return torch.cat([prefill, self.attention_mask[:, record.prefill_length :]], dim=1)
        if kept.keep_valid is None:
            return None
        generated = self.past_length - record.prefill_length + hidden_states.shape[1]
        if generated <= 0:
            return kept.keep_valid.to(keep.device)
        tail = torch.ones(keep.shape[0], generated, dtype=torch.bool, device=keep.device)
        return torch.cat([kept.keep_valid.to(keep.device), tail], dim=1)

    def _pruned_kwargs(self, hidden_states, layer_kwargs: dict[str, Any], layer: int, mask_2d) -> dict[str, Any]:
        kwargs = dict(layer_kwargs)
        kwargs["attention_mask"] = self.backend.causal_mask(hidden_states, mask_2d, self.cache, layer)
        # The gaps pruning leaves in the positions would read as packed sequences to some attention backends.
        kwargs["position_ids"] = None
        return kwargs


class _Row(NamedTuple):
    """One sample's sequence after a stage: `index` into the current sequence followed by `inserted`'s tokens
    (index length + j is inserted[j]); `absolute` the prefill positions (an inserted token: its image's last)."""

    index: torch.Tensor
    absolute: torch.Tensor
    inserted: torch.Tensor | None = None


def _given_positions(layer_kwargs: dict[str, Any], length: int, past_length: int, device) -> torch.Tensor:
    """The position ids the library passed the layers, (B or 1, L); consecutive after the cache when none."""
    given = layer_kwargs.get("position_ids")
    if given is not None:
        return given
    return torch.arange(past_length, past_length + length, device=device)[None]


def _spans_in(current: torch.Tensor, valid: torch.Tensor | None, spans: list[ImageSpan]) -> list[ImageSpan]:
    """Where each image's remaining tokens sit in a pruned sequence whose absolute positions are `current`
    (ascending over the real entries, padding on the left)."""
    real = torch.ones_like(current, dtype=torch.bool) if valid is None else valid.to(current.device).bool()
    located = []
    for start, count in spans:
        inside = real & (current >= start) & (current < start + count)
        located.append((int(inside.int().argmax()), int(inside.sum())) if bool(inside.any()) else (0, 0))
    return located


def _and_valid(mask: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor | None:
    """A gathered padding mask with the padding of ragged kept rows masked too (dtype kept)."""
    if valid is None:
        return mask
    if mask is None:
        return valid
    valid = valid.to(mask.device)
    return mask & valid if mask.dtype == torch.bool else mask * valid.to(mask.dtype)
