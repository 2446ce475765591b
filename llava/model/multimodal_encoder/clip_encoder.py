"""The CLIP vision tower: patch features from a chosen hidden layer, loaded lazily as in LLaVA."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import torch
from torch import nn
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import eager_attention_forward
from transformers.utils import logging as hf_logging

from llava.model.strict_loading import load_strictly

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SelectLayerOutputs:
    """The select layer's view of a batch of crops, for reducers that rank patches by the [CLS] token.

    patches: (N, n, C) the patch features LLaVA uses; cls: (N, C) the [CLS] feature of the same layer;
    cls_attention: (N, n) the [CLS] query's attention over the patches in the encoder layer that outputs the
    select layer, summed over the heads (what that layer's eager attention weights give for row 0); keys:
    (N, n + 1, head_dim) that layer's keys averaged over the heads, [CLS] first. head_attention: (N, heads, n) the
    [CLS] row over the patches per head, as that layer's eager attention returns it: transformers' own
    `eager_attention_forward` on the whole sequence, softmax in float32 cast back to the tower's dtype (VisPruner
    ranks by its head mean, where a difference of one rounding can reorder neighbours).
    """

    patches: torch.Tensor
    cls: torch.Tensor
    cls_attention: torch.Tensor
    keys: torch.Tensor
    head_attention: torch.Tensor | None = None


def select_layer_outputs(tower, images: torch.Tensor, select_layer: int) -> SelectLayerOutputs:
    """`SelectLayerOutputs` of a CLIP vision model (LLaVA's own tower, or llava-hf's `vision_tower`) for the patch
    features of `select_layer`: the [CLS] attention and keys come from the encoder layer that outputs it, through
    its own query and key projections (one query row), so that no eager attention is needed."""
    outputs = tower(images.to(device=tower.device, dtype=tower.dtype), output_hidden_states=True)
    hidden = outputs.hidden_states  # hidden[i] is the input of encoder layer i, hidden[i + 1] its output
    layer_index = select_layer % len(hidden) - 1
    if layer_index < 0:
        raise ValueError(f"the select layer {select_layer} is the embeddings, not an encoder layer")
    encoder = tower.encoder if hasattr(tower, "encoder") else tower.vision_model.encoder
    layer = encoder.layers[layer_index]
    attn = layer.self_attn
    normed = layer.layer_norm1(hidden[layer_index])
    batch, length, _ = normed.shape
    query = attn.q_proj(normed[:, :1]).view(batch, attn.num_heads, attn.head_dim)
    keys = attn.k_proj(normed).view(batch, length, attn.num_heads, attn.head_dim)
    scores = torch.einsum("bhd,blhd->bhl", query.float(), keys.float()) * attn.scale
    # The same projections and function as the layer's eager attention, on the whole sequence (a one-row product
    # may round differently), so that the per-head [CLS] row is the one `output_attentions` would give.
    shape = (batch, length, attn.num_heads, attn.head_dim)
    _, eager_weights = eager_attention_forward(
        attn, attn.q_proj(normed).view(shape).transpose(1, 2), keys.transpose(1, 2),
        attn.v_proj(normed).view(shape).transpose(1, 2), None, scaling=attn.scale)
    selected = hidden[select_layer]
    dtype = images.dtype
    return SelectLayerOutputs(
        patches=selected[:, 1:].to(dtype),
        cls=selected[:, 0].to(dtype),
        cls_attention=scores.softmax(dim=-1).sum(dim=1)[:, 1:],
        keys=keys.mean(dim=2).to(dtype),
        head_attention=eager_weights[:, :, 0, 1:],
    )


class CLIPVisionTower(nn.Module):
    """Wraps `CLIPVisionModel`; `delay_load=True` keeps only the config until `load_model()`.

    LLaVA-1.5 checkpoints do not carry the tower's weights: they name it in `mm_vision_tower` and the loader
    calls `load_model()` after the language model is built. Checkpoints trained with the tower unfrozen
    (`unfreeze_mm_vision_tower`, the released LLaVA-1.6 ones) carry it under `model.vision_tower.vision_tower.*`:
    the tower is then built empty from its config, and the checkpoint's own weights fill it as the language
    model's do (`mm_vision_tower` then only supplies the architecture and the image processor).
    """

    def __init__(self, vision_tower: str, args, delay_load: bool = False):
        super().__init__()
        self.is_loaded = False
        self.unfrozen = False  # trained with the rest: forward keeps gradients
        self.vision_tower_name = vision_tower
        self.select_layer = args.mm_vision_select_layer
        self.select_feature = getattr(args, "mm_vision_select_feature", "patch")
        if self.select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"mm_vision_select_feature must be 'patch' or 'cls_patch', got {self.select_feature!r}")
        self.weights_in_checkpoint = delay_load and bool(getattr(args, "unfreeze_mm_vision_tower", False))
        if not delay_load:
            self.load_model()
        elif self.weights_in_checkpoint:
            self.load_model(from_checkpoint=True)
        else:
            self.cfg_only = CLIPVisionConfig.from_pretrained(self.vision_tower_name)

    def load_model(self, device_map=None, dtype: torch.dtype | None = None, from_checkpoint: bool = False) -> None:
        """Load the tower named by `mm_vision_tower`; `from_checkpoint`: build it from that name's config
        only, for the enclosing checkpoint's weights to fill (they replace whatever it holds)."""
        if self.is_loaded:
            logger.info("%s is already loaded; skipping", self.vision_tower_name)
            return
        # The PIL processor reproduces LLaVA's original pixel values and needs no torchvision.
        self.image_processor = CLIPImageProcessorPil.from_pretrained(self.vision_tower_name)
        if from_checkpoint:
            self.vision_tower = CLIPVisionModel(CLIPVisionConfig.from_pretrained(self.vision_tower_name))
        else:
            with _no_loading_bar():  # one "Loading weights" bar per checkpoint (the language model's) is enough
                self.vision_tower = load_strictly(CLIPVisionModel, self.vision_tower_name, device_map=device_map,
                                                  dtype=dtype)
        self.vision_tower.requires_grad_(False)
        self.is_loaded = True

    def feature_select(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        features = hidden_states[self.select_layer]
        return features[:, 1:] if self.select_feature == "patch" else features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) -> (N, num_patches, hidden) in the input's dtype. Without gradients unless the
        tower is being trained (`unfrozen`, set by `--unfreeze_mm_vision_tower`): LoRA's adapters, matched by
        layer name, also land in the tower's q/k/v projections, and LLaVA leaves those untrained."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.unfrozen):
            outputs = self.vision_tower(images.to(device=self.device, dtype=self.dtype), output_hidden_states=True)
        return self.feature_select(outputs.hidden_states).to(images.dtype)

    @torch.no_grad()
    def forward_with_cls_attention(self, images: torch.Tensor) -> SelectLayerOutputs:
        """As `forward`, plus the select layer's [CLS] attention and keys (`select_layer_outputs`)."""
        if self.select_feature != "patch":
            raise ValueError("ranking patches by the [CLS] attention needs mm_vision_select_feature 'patch', "
                             f"got {self.select_feature!r}")
        return select_layer_outputs(self.vision_tower, images, self.select_layer)

    @property
    def config(self) -> CLIPVisionConfig:
        return self.vision_tower.config if self.is_loaded else self.cfg_only

    @property
    def dtype(self) -> torch.dtype:
        return self.vision_tower.dtype

    @property
    def device(self) -> torch.device:
        return self.vision_tower.device

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_patches_per_side(self) -> int:
        return self.config.image_size // self.config.patch_size

    @property
    def num_patches(self) -> int:
        return self.num_patches_per_side**2


@contextlib.contextmanager
def _no_loading_bar():
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
