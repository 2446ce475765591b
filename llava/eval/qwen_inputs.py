"""Eval inputs for Qwen2-VL / Qwen2.5-VL checkpoints: prompts through the model's own chat template and
processor (not LLaVA's conversation templates), and the extra tensors its `generate` takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from PIL import Image

from llava.constants import DEFAULT_IMAGE_TOKEN


def qwen_messages(question: str, num_images: int) -> list[dict]:
    """One user turn: the images first, then the question (as Qwen's own examples and lmms-eval put them)."""
    return [{"role": "user", "content": [{"type": "image"}] * num_images + [{"type": "text", "text": question}]}]


def qwen_content(messages: Sequence[Mapping[str, str]]) -> list[dict]:
    """{role, content} messages with `<image>` placeholders -> Qwen's chat-template form, each placeholder an
    `{"type": "image"}` entry where it stood (the images are taken in order of appearance)."""
    converted = []
    for message in messages:
        content = []
        for i, text in enumerate(message["content"].split(DEFAULT_IMAGE_TOKEN)):
            if i:
                content.append({"type": "image"})
            if text.strip():
                content.append({"type": "text", "text": text.strip()})
        converted.append({"role": message["role"], "content": content})
    return converted


def qwen_prompt_inputs(question: str, images: Sequence[Image.Image], processor) -> dict[str, torch.Tensor | None]:
    """input_ids (L,) and mm_token_type_ids (L,), plus pixel_values and image_grid_thw (None without images)."""
    return qwen_chat_inputs(qwen_messages(question, len(images)), images, processor)


def qwen_chat_inputs(messages: list[dict], images: Sequence[Image.Image], processor) -> dict[str, torch.Tensor | None]:
    """As `qwen_prompt_inputs`, for a whole conversation (its `{"type": "image"}` entries take `images` in order)."""
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    encoded = processor(text=[text], images=list(images) or None, return_tensors="pt")
    token_types = encoded.get("mm_token_type_ids")
    return {
        "input_ids": encoded["input_ids"][0],
        "mm_token_type_ids": token_types[0] if token_types is not None else torch.zeros_like(encoded["input_ids"][0]),
        "pixel_values": encoded.get("pixel_values"),
        "image_grid_thw": encoded.get("image_grid_thw"),
    }


def left_pad_rows(rows: Sequence[torch.Tensor], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D rows of different lengths -> (B, L) left-padded with `pad_value`, and the (B, L) attention mask."""
    longest = max(row.numel() for row in rows)
    out = torch.full((len(rows), longest), pad_value, dtype=rows[0].dtype)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, longest - row.numel():] = row
        mask[b, longest - row.numel():] = 1
    return out, mask


def qwen_generate_kwargs(batch: Sequence[dict], pad_id: int, device, dtype) -> dict[str, torch.Tensor]:
    """One left-padded generate call's inputs from per-prompt `qwen_prompt_inputs` results."""
    ids, mask = left_pad_rows([item["input_ids"] for item in batch], pad_id)
    token_types, _ = left_pad_rows([item["mm_token_type_ids"] for item in batch], 0)
    kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "mm_token_type_ids": token_types.to(device)}
    with_images = [item for item in batch if item["pixel_values"] is not None]
    if with_images:
        kwargs["pixel_values"] = torch.cat([item["pixel_values"] for item in with_images]).to(device, dtype)
        kwargs["image_grid_thw"] = torch.cat([item["image_grid_thw"] for item in with_images]).to(device)
    return kwargs
