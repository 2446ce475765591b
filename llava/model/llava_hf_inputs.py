"""Prompt text with `<image>` placeholders + PIL images -> inputs of the llava-hf classes, under two protocols.

LLaVA's protocol (what our eval workers do with `--conv-mode`), so that a llava-hf checkpoint sees exactly the
tokens and pixels its original-layout twin sees:
- the text pieces around each `<image>` are tokenized separately (`llava.mm_utils.tokenizer_image_token`), which
  keeps the "▁" piece that starts the text after an image; the llava-hf processor tokenizes the expanded prompt
  in one piece and drops it;
- each placeholder becomes as many image tokens as the model splices for that image (LLaVA-1.5: the patches of one
  crop; LLaVA-NeXT: the global view plus the unpadded crop map with a newline token after each row, counted by
  the library's own `get_anyres_image_grid_shape` / `unpad_image` on shapes only);
- pixels come from LLaVA's `process_images`: LLaVA-1.5 pads to a square with the mean colour before the CLIP
  processor (the llava-hf processor resizes and centre-crops instead); LLaVA-NeXT's anyres crops, stacked as
  (images, most crops, 3, H, W) with zero crops for padding, and `image_sizes` (height, width) per image.

The processor's protocol (lmms-eval's `llava_hf` model): the chat template, then `processor(text, images)`.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import CLIPImageProcessorPil
from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model.families.base import left_pad_rows, user_turn

def is_llava_next(config) -> bool:
    return getattr(config, "model_type", None) == "llava_next"


def patches_per_side(config) -> int:
    return config.vision_config.image_size // config.vision_config.patch_size


def image_token_count(config, image_size: tuple[int, int] | None = None) -> int:
    """How many image tokens the model splices for one image of `image_size` = (width, height), PIL's order
    (needed by LLaVA-NeXT only): computed with the library's own functions, as its forward computes it."""
    side = patches_per_side(config)
    one_crop = side * side + (1 if config.vision_feature_select_strategy == "full" else 0)
    if not is_llava_next(config):
        return one_crop
    width, height = image_size
    rows, cols = image_grid(config, image_size)
    feature_map = torch.empty(0, rows * side, cols * side, device="meta")
    unpadded = unpad_image(feature_map, [height, width])
    return one_crop + unpadded.shape[1] * (unpadded.shape[2] + 1)


def image_grid(config, image_size: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of LLaVA-NeXT's anyres crops for an image of `image_size` = (width, height)."""
    width, height = image_size
    return get_anyres_image_grid_shape([height, width], config.image_grid_pinpoints, config.vision_config.image_size)


def clip_image_processor(image_processor) -> CLIPImageProcessorPil:
    """The CLIP processor LLaVA's `process_images` calls on each view, with the checkpoint's settings (a
    LLaVA-NeXT image processor does anyres itself, which LLaVA's protocol does its own way)."""
    settings = image_processor.to_dict()
    keep = ("size", "crop_size", "do_center_crop", "do_resize", "do_rescale", "rescale_factor", "do_normalize",
            "image_mean", "image_std", "resample", "do_convert_rgb")
    return CLIPImageProcessorPil(**{key: settings[key] for key in keep if key in settings})


def llava_pixels(images: Sequence[Image.Image], image_processor, config) -> dict[str, torch.Tensor]:
    """`pixel_values` (and for LLaVA-NeXT `image_sizes`) of `images` as LLaVA's `process_images` makes them."""
    clip = clip_image_processor(image_processor)
    if not is_llava_next(config):
        return {"pixel_values": process_images(images, clip, types.SimpleNamespace(image_aspect_ratio="pad"))}
    # The llava-hf config holds (height, width) pinpoints; LLaVA's anyres reads (width, height).
    pinpoints = [(width, height) for height, width in config.image_grid_pinpoints]
    crops = process_images(images, clip, types.SimpleNamespace(image_aspect_ratio="anyres",
                                                              image_grid_pinpoints=pinpoints))
    return {"pixel_values": padded_crops(list(crops)),
            "image_sizes": torch.tensor([[image.height, image.width] for image in images])}


def padded_crops(crops: list[torch.Tensor]) -> torch.Tensor:
    """(P_i, 3, H, W) per image -> (images, max P, 3, H, W), zero crops after each image's own (the model reads
    only the first P_i, computed from `image_sizes`)."""
    most = max(stack.shape[0] for stack in crops)
    padded = crops[0].new_zeros((len(crops), most, *crops[0].shape[1:]))
    for index, stack in enumerate(crops):
        padded[index, : stack.shape[0]] = stack
    return padded


def llava_protocol_inputs(prompt: str, images: Sequence[Image.Image], tokenizer, image_processor,
                          config) -> dict[str, torch.Tensor]:
    """One prompt under LLaVA's protocol: {"input_ids": (L,), "pixel_values": ..., "image_sizes": ... (NeXT)}.

    prompt: the full prompt text (e.g. `build_prompt`'s, with the conversation template) with one `<image>` per
    image; tokenizer: the checkpoint's declared (slow-compatible) tokenizer, as LLaVA loads it.
    """
    placeholders = prompt.count(DEFAULT_IMAGE_TOKEN)
    if placeholders != len(images):
        raise ValueError(f"the prompt has {placeholders} {DEFAULT_IMAGE_TOKEN} placeholder(s) but {len(images)} "
                         "image(s) were given; put one in the prompt per image")
    image_token = config.image_token_id
    ids = tokenizer_image_token(prompt, tokenizer, image_token_index=image_token)
    counts = iter([image_token_count(config, image.size) for image in images])
    expanded = []
    for token in ids:
        expanded.extend([image_token] * next(counts) if token == image_token else [token])
    inputs = {"input_ids": torch.tensor(expanded, dtype=torch.long)}
    if images:
        inputs.update(llava_pixels(images, image_processor, config))
    return inputs


def left_padded_batch(items: Sequence[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Prompts from `llava_protocol_inputs` as one generate call: `input_ids` and `attention_mask` (B, L) padded
    on the left (every prompt's last token at the end), the images of all prompts in prompt order."""
    ids, mask = left_pad_rows([item["input_ids"] for item in items], pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    batch.update(batched_images(items))
    return batch


def batched_images(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The images of all prompts in prompt order, as one call takes them: `pixel_values` (LLaVA-NeXT: every
    image's crops padded to the batch's most) and, for LLaVA-NeXT, `image_sizes`."""
    with_images = [item for item in items if "pixel_values" in item]
    if not with_images:
        return {}
    batch = {}
    pixels = [item["pixel_values"] for item in with_images]
    if pixels[0].ndim == 5:
        most = max(stack.shape[1] for stack in pixels)
        pixels = [torch.nn.functional.pad(stack, (0, 0, 0, 0, 0, 0, 0, most - stack.shape[1])) for stack in pixels]
        batch["image_sizes"] = torch.cat([item["image_sizes"] for item in with_images])
    batch["pixel_values"] = torch.cat(pixels)
    return batch


def processor_protocol_inputs(processor, questions: Sequence[str], images: Sequence[Sequence[Image.Image]]):
    """The processor's own protocol (lmms-eval's `llava_hf`): per prompt one user turn with its images then its
    question, through the checkpoint's chat template, and `processor(text, images)` (left-padded when several).
    Returns the processor's BatchFeature (input_ids, attention_mask, pixel_values, image_sizes for NeXT)."""
    texts = []
    for question, prompt_images in zip(questions, images):
        texts.append(processor.apply_chat_template(user_turn(question, len(prompt_images)), add_generation_prompt=True))
    flat = [image for prompt_images in images for image in prompt_images]
    return processor(text=texts, images=flat or None, padding=len(texts) > 1, padding_side="left",
                     return_tensors="pt")
