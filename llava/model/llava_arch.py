"""The LLaVA parts shared by every language-model backend: vision tower, projector, and splicing.

`LlavaMetaModel` is mixed into the backend's base model (it owns `vision_tower` and `mm_projector`, so
the weight names stay `model.mm_projector.*`); `LlavaMetaForCausalLM` is mixed into the causal-LM class
and turns `input_ids` with `IMAGE_TOKEN_INDEX` placeholders into `inputs_embeds` with image features.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import torch
from torch import nn

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import get_anyres_image_grid_shape
from llava.model.multimodal_encoder.builder import build_vision_tower
from llava.model.multimodal_encoder.clip_encoder import SelectLayerOutputs
from llava.model.multimodal_projector.builder import build_vision_projector
from llava.model.patch_merge import check_merge_type, merge_crops, merged_token_count
from llava.model.pruning import PruningSettings, PruningInput, PruningMethod, PruningRecord, get_method
from llava.model.pruning.methods import reduce_images
from llava.model.pruning.record import ImageReduction, ImageSpan  # ImageSpan: (start, length) in the sequence

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class MultimodalInputs:
    """The spliced batch. `image_spans[b]` lists sample b's image spans, in sequence order."""

    inputs_embeds: torch.Tensor  # (B, L, D)
    attention_mask: torch.Tensor  # (B, L) bool, False on padding
    position_ids: torch.Tensor  # (B, L), 0 at each sample's first real token
    labels: torch.Tensor | None  # (B, L) with IGNORE_INDEX on image tokens and padding
    image_spans: list[list[ImageSpan]]


@dataclasses.dataclass
class _EncodedImage:
    features: torch.Tensor  # (n, D) its tokens in sequence order
    grid: tuple[int, int] | None  # (rows, cols) when the tokens are one crop's patch grid
    tower: SelectLayerOutputs | None  # that crop's select-layer outputs, when asked for


class LlavaMetaModel:
    """Mixin for the backend's base model: owns the vision tower and the projector."""

    def __init__(self, config):
        super().__init__(config)
        if getattr(config, "mm_vision_tower", None) is not None:
            self.vision_tower = build_vision_tower(config, delay_load=True)
            self.mm_projector = build_vision_projector(config)
            if _uses_image_newline(config):
                self.image_newline = nn.Parameter(torch.empty(config.hidden_size))

    def get_vision_tower(self):
        return getattr(self, "vision_tower", None)

    def initialize_vision_modules(self, model_args) -> None:
        """Attach a vision tower and projector to a language model (training stage 1), as LLaVA does.

        model_args: needs `vision_tower`, `mm_vision_select_layer`, `mm_vision_select_feature`,
        `mm_projector_type`, and optionally `pretrain_mm_mlp_adapter` (a stage-1 projector file).
        """
        tower = model_args.vision_tower
        # A local tower by its absolute path: every checkpoint saved from here (periodic, stage-1 projector,
        # LoRA) then loads from any working directory; the final checkpoint carries a copy of it
        # (llava.model.weights.portable_vision_tower).
        self.config.mm_vision_tower = os.path.abspath(tower) if os.path.isdir(tower) else tower
        self.config.mm_vision_select_layer = model_args.mm_vision_select_layer
        self.config.mm_vision_select_feature = getattr(model_args, "mm_vision_select_feature", "patch")
        self.config.mm_patch_merge_type = getattr(model_args, "mm_patch_merge_type", "flat")
        check_merge_type(self.config.mm_patch_merge_type)
        if self.get_vision_tower() is None:
            self.vision_tower = build_vision_tower(model_args)
        elif not self.vision_tower.is_loaded:
            self.vision_tower.load_model()
        self.config.use_mm_proj = True
        self.config.mm_projector_type = getattr(model_args, "mm_projector_type", "linear")
        self.config.mm_hidden_size = self.vision_tower.hidden_size
        if getattr(self, "mm_projector", None) is None:
            self.mm_projector = build_vision_projector(self.config)
        for p in self.mm_projector.parameters():
            p.requires_grad = True
        if _uses_image_newline(self.config) and getattr(self, "image_newline", None) is None:
            # LLaVA-1.6's initialisation: the scale of a token embedding.
            scale = self.config.hidden_size**-0.5
            self.image_newline = nn.Parameter(torch.randn(self.config.hidden_size, dtype=self.dtype) * scale)
        adapter = getattr(model_args, "pretrain_mm_mlp_adapter", None)
        if adapter is not None:
            from llava.model.weights import load_projector_state

            self.mm_projector.load_state_dict(load_projector_state(adapter))


class LlavaMetaForCausalLM:
    """Mixin for the causal-LM class: image encoding and splicing image features into the sequence."""

    def get_model(self):
        return self.model

    def get_vision_tower(self):
        return self.get_model().get_vision_tower()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_patches, D) projected features."""
        return self.project_features(self.get_vision_tower()(images))

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """Vision-tower features (..., C) -> language-model tokens (..., D)."""
        projector = self.get_model().mm_projector
        # In the projector's dtype: callers such as lmms-eval's own `llava` send float16 pixels even to a
        # float32 model on the CPU.
        return projector(features.to(next(projector.parameters()).dtype))

    def image_features(
        self, images: torch.Tensor | list[torch.Tensor], image_sizes: list[tuple[int, int]] | None = None
    ) -> list[torch.Tensor]:
        """One (n_i, D) feature matrix per image.

        images: a (N, 3, H, W) tensor (one crop per image, never merged), or a list whose items are
        (3, H, W) images or (P, 3, H, W) stacks of anyres crops, merged as `mm_patch_merge_type` says
        (`llava.model.patch_merge`); image_sizes: the original (width, height) of each image, which the
        spatial merges need.
        """
        return [image.features for image in self._encoded_images(images, image_sizes)]

    def reduced_image_features(self, images, image_sizes, method: PruningMethod, settings: PruningSettings,
                               instructions=None) -> tuple[list[torch.Tensor], list[ImageReduction], float]:
        """`image_features` put through a method that reduces them before the language model: the reduced
        features per image, what the method did to each, and the seconds the method took (not the tower).
        instructions: per image, the instruction of its prompt (or None)."""
        encoded = self._encoded_images(images, image_sizes, PruningInput.VISION_CLS_ATTENTION in method.inputs)
        llava_next = str(getattr(self.config, "image_aspect_ratio", "pad")).startswith("anyres")
        return reduce_images([(image.features, image.grid, image.tower) for image in encoded], method, settings,
                             llava_next, self.project_features, instructions, self.get_vision_tower())

    def _encoded_images(self, images, image_sizes, tower_outputs: bool = False) -> list[_EncodedImage]:
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            stacks, merge_type = list(images.unsqueeze(1)), None  # one crop per image, never merged
        else:
            stacks = [img if img.ndim == 4 else img.unsqueeze(0) for img in images]
            merge_type = getattr(self.config, "mm_patch_merge_type", "flat")
        if image_sizes is not None and len(image_sizes) != len(stacks):
            raise ValueError(f"{len(stacks)} images but {len(image_sizes)} image_sizes")
        tower = self.get_vision_tower()
        pixels = torch.cat(stacks)
        # The [CLS] ranking is computed for single-crop images only: those are the ones it can reduce.
        select = tower.forward_with_cls_attention(pixels) if tower_outputs else None
        encoded = self.project_features(select.patches if select is not None else tower(pixels))
        newline = getattr(self.get_model(), "image_newline", None)
        side = tower.num_patches_per_side
        result, offset = [], 0
        for i, stack in enumerate(stacks):
            crops = encoded[offset : offset + stack.shape[0]]
            if merge_type is None:
                features = crops[0]
            else:
                size = image_sizes[i] if image_sizes is not None else None
                features = merge_crops(crops, merge_type, size, self._crop_grid(stack.shape[0], size, merge_type),
                                       newline)
            one_grid = stack.shape[0] == 1 and features.shape[0] == side * side
            outputs = None
            if select is not None and one_grid:
                outputs = SelectLayerOutputs(select.patches[offset], select.cls[offset],
                                             select.cls_attention[offset], select.keys[offset],
                                             select.head_attention[offset])
            result.append(_EncodedImage(features, (side, side) if one_grid else None, outputs))
            offset += stack.shape[0]
        return result

    def image_token_count(self, num_crops: int, image_size: tuple[int, int] | None) -> int:
        """Tokens that one image preprocessed into `num_crops` crops takes in the spliced sequence."""
        merge_type = getattr(self.config, "mm_patch_merge_type", "flat")
        side = self.get_vision_tower().num_patches_per_side
        return merged_token_count(num_crops, side, merge_type, image_size,
                                  self._crop_grid(num_crops, image_size, merge_type))

    def image_token_counts(self, pixels, image_sizes: list[tuple[int, int]] | None) -> list[int]:
        """Tokens per image in the spliced sequence (before any pruning), for pixels as `process_images`
        gives them: a (N, 3, H, W) tensor (one crop each, never merged) or one (P, 3, H, W) stack per image."""
        if pixels is None:
            return []
        if isinstance(pixels, torch.Tensor) and pixels.ndim == 4:
            return [self.get_vision_tower().num_patches] * pixels.shape[0]
        sizes = image_sizes if image_sizes is not None else [None] * len(pixels)
        return [self.image_token_count(p.shape[0] if p.ndim == 4 else 1, size) for p, size in zip(pixels, sizes)]

    def spliced_length(self, input_ids: torch.Tensor, pixels, image_sizes) -> int:
        """The length of one prompt, (L,) ids with IMAGE_TOKEN_INDEX placeholders, once its images are spliced."""
        placeholders = int((input_ids == IMAGE_TOKEN_INDEX).sum())
        return int(input_ids.numel()) - placeholders + sum(self.image_token_counts(pixels, image_sizes))

    def _crop_grid(self, num_crops: int, image_size: tuple[int, int] | None, merge_type: str):
        """(cols, rows) of an image's anyres crops when a spatial merge needs it, else None."""
        if num_crops == 1 or merge_type == "flat" or image_size is None:
            return None
        aspect = getattr(self.config, "image_aspect_ratio", None)
        if aspect != "anyres":
            raise NotImplementedError(
                f"mm_patch_merge_type {merge_type!r} merges the crops of image_aspect_ratio 'anyres' only, got "
                f"{num_crops} crops with image_aspect_ratio {aspect!r}"
            )
        pinpoints = getattr(self.config, "image_grid_pinpoints", None)
        if pinpoints is None:
            raise ValueError("image_aspect_ratio='anyres' needs `image_grid_pinpoints` in the model config")
        crop_size = self.get_vision_tower().config.image_size
        return get_anyres_image_grid_shape(tuple(image_size), pinpoints, crop_size)

    def prepare_multimodal_inputs(
        self,
        input_ids: torch.LongTensor,
        images: torch.Tensor | list[torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        padding_side: str | None = None,
        image_sizes: list[tuple[int, int]] | None = None,
        pruning_record: PruningRecord | None = None,
    ) -> MultimodalInputs:
        """Replace each IMAGE_TOKEN_INDEX in `input_ids` (B, L) by the next image's features.

        Padding (attention_mask == 0) is stripped per sample, the samples are re-padded on
        `padding_side` (default: the config's `tokenizer_padding_side`), and sequences longer than
        `tokenizer_model_max_length` are truncated, as in LLaVA. `image_sizes` (original width, height per
        image) are needed by the spatial merges of LLaVA-1.6's anyres crops. When the call's pruning method
        (`pruning_record`'s settings, else the model's) works before the language model, the features are
        reduced here and the record says what became of each image.
        """
        num_placeholders = int((input_ids == IMAGE_TOKEN_INDEX).sum())
        method, settings = self._reducer(pruning_record)
        reductions = None
        if images is None or len(images) == 0:
            features = []
        elif method is not None:
            instructions = None
            if pruning_record.instructions is not None:  # each sample's instruction, once per image it holds
                per_sample = (input_ids == IMAGE_TOKEN_INDEX).sum(dim=1).tolist()
                instructions = [text for text, n in zip(pruning_record.instructions, per_sample) for _ in range(n)]
            features, reductions, seconds = self.reduced_image_features(images, image_sizes, method, settings,
                                                                        instructions)
            pruning_record.selection_seconds = seconds
        else:
            features = self.image_features(images, image_sizes)
        if num_placeholders != len(features):
            raise ValueError(
                f"the prompt has {num_placeholders} <image> placeholder(s) but {len(features)} image(s) were given; "
                "put one <image> in the prompt per image"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        embed_tokens = self.get_model().embed_tokens
        max_length = getattr(self.config, "tokenizer_model_max_length", None)

        samples, per_sample_reductions, next_image = [], [], 0
        for b in range(input_ids.shape[0]):
            valid = attention_mask[b]
            ids = input_ids[b][valid]
            sample_labels = labels[b][valid] if labels is not None else None
            sample = _splice_one(ids, sample_labels, features, next_image, embed_tokens)
            if reductions is not None:
                per_sample_reductions.append(reductions[next_image : next_image + len(sample[2])])
            next_image += len(sample[2])
            if max_length is not None:
                sample = _truncate(sample, max_length)
            samples.append(sample)
        if pruning_record is not None:
            pruning_record.image_reductions = per_sample_reductions if reductions is not None else None
        return _pad_batch(samples, padding_side or getattr(self.config, "tokenizer_padding_side", "right"))

    def _reducer(self, record: PruningRecord | None) -> tuple[PruningMethod | None, PruningSettings | None]:
        """The call's method and settings if that method works before the language model, else (None, None)."""
        if record is None:
            return None, None
        settings = self.get_model().dart_config(record)
        method = get_method(settings.method) if settings is not None else None
        return (method, settings) if method is not None and method.before_llm else (None, None)


def _uses_image_newline(config) -> bool:
    return "unpad" in (getattr(config, "mm_patch_merge_type", None) or "")


def _splice_one(ids, labels, features, next_image, embed_tokens):
    """One sample: (embeds (L, D), labels (L,) or None, spans) with features spliced at the placeholders."""
    is_image = ids == IMAGE_TOKEN_INDEX
    # One embedding call for all text; the placeholder ids are replaced by 0 and dropped below.
    text_embeds = embed_tokens(ids.masked_fill(is_image, 0))
    positions = is_image.nonzero().flatten().tolist()
    embeds, label_parts, spans = [], [], []
    cursor, length = 0, 0
    for image_index, pos in enumerate(positions, start=next_image):
        feature = features[image_index].to(text_embeds.dtype)
        embeds += [text_embeds[cursor:pos], feature]
        if labels is not None:
            ignore = torch.full((feature.shape[0],), IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
            label_parts += [labels[cursor:pos], ignore]
        length += pos - cursor
        spans.append((length, feature.shape[0]))
        length += feature.shape[0]
        cursor = pos + 1
    embeds.append(text_embeds[cursor:])
    if labels is not None:
        label_parts.append(labels[cursor:])
    return torch.cat(embeds), (torch.cat(label_parts) if labels is not None else None), spans


_truncation_warned = False


def _truncate(sample, max_length):
    global _truncation_warned
    embeds, labels, spans = sample
    if embeds.shape[0] <= max_length:
        return sample
    # Training on long conversations truncates routinely: say it once, then only at debug level.
    log = logger.debug if _truncation_warned else logger.warning
    log("sequence of %d tokens truncated to tokenizer_model_max_length=%d%s", embeds.shape[0], max_length,
        "" if _truncation_warned else " (further truncations are logged at debug level)")
    _truncation_warned = True
    spans = [(s, min(n, max_length - s)) for s, n in spans if s < max_length]
    return embeds[:max_length], (labels[:max_length] if labels is not None else None), spans


def _pad_batch(samples, padding_side: str) -> MultimodalInputs:
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    max_len = max(s[0].shape[0] for s in samples)
    first = samples[0][0]
    batch, dim = len(samples), first.shape[-1]
    embeds = first.new_zeros((batch, max_len, dim))
    mask = torch.zeros((batch, max_len), dtype=torch.bool, device=first.device)
    position_ids = torch.zeros((batch, max_len), dtype=torch.long, device=first.device)
    has_labels = samples[0][1] is not None
    labels = torch.full((batch, max_len), IGNORE_INDEX, dtype=torch.long, device=first.device) if has_labels else None
    all_spans = []
    for b, (sample_embeds, sample_labels, spans) in enumerate(samples):
        n = sample_embeds.shape[0]
        offset = max_len - n if padding_side == "left" else 0
        embeds[b, offset : offset + n] = sample_embeds
        mask[b, offset : offset + n] = True
        position_ids[b, offset : offset + n] = torch.arange(n, device=first.device)
        if has_labels:
            labels[b, offset : offset + n] = sample_labels
        all_spans.append([(start + offset, length) for start, length in spans])
    return MultimodalInputs(embeds, mask, position_ids, labels, all_spans)
