"""LLaVA's training data: a JSON list of conversations, read lazily, images loaded per item."""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import torch

from llava.constants import IGNORE_INDEX
from llava.mm_utils import load_image, process_images
from llava.train.preprocess import move_image_token_first, tokenize_conversation


class LazySupervisedDataset(torch.utils.data.Dataset):
    """Items `{"input_ids", "labels", "image"?, "image_size"?}`; samples without an "image" key are text-only.
    With `image_aspect_ratio` "anyres" an image is a (P, 3, H, W) stack of crops (`data_args` then carries
    `image_grid_pinpoints`), and `image_size` its (width, height), which the spatial merges need.

    samples: LLaVA's format, `[{"id", "image": "rel/path", "conversations": [{"from", "value"}, ...]}]`, as
    `llava.train.data_checks.load_training_samples` reads and checks them.
    """

    def __init__(self, samples: list[dict], tokenizer, data_args, template_name: str):
        self.samples = samples
        self.tokenizer = tokenizer
        self.data_args = data_args
        self.template_name = template_name

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> list[int]:
        """Rough token counts (words + 128 per image), as LLaVA uses for length grouping."""
        return [_word_count(s) + (128 if "image" in s else 0) for s in self.samples]

    @property
    def modality_lengths(self) -> list[int]:
        """Word counts, negative for text-only samples: the sign tells `group_by_modality_length` the modality."""
        return [_word_count(s) if "image" in s else -_word_count(s) for s in self.samples]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        has_image = "image" in sample
        conversations = sample["conversations"]
        if has_image:
            conversations = move_image_token_first(conversations, getattr(self.data_args, "mm_use_im_start_end", False))
        item = tokenize_conversation(
            conversations,
            self.tokenizer,
            self.template_name,
            has_image=has_image,
            max_length=None if has_image else self.tokenizer.model_max_length,
            train_on_prompt=getattr(self.data_args, "train_on_prompt", False),
        )
        if has_image:
            image = load_image(os.path.join(self.data_args.image_folder, sample["image"]))
            pixels = process_images([image], self.data_args.image_processor, self.data_args)
            item["image"] = pixels[0]
            item["image_size"] = image.size
        return item


def _word_count(sample: dict) -> int:
    return sum(len(turn["value"].split()) for turn in sample["conversations"])


@dataclasses.dataclass
class DataCollatorForSupervisedDataset:
    """Right-pads to the longest item; images are stacked (one per image sample, in order), or listed when
    their shapes differ (anyres crop stacks), with their `image_sizes`."""

    tokenizer: object

    def __call__(self, instances: Sequence[dict]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.nn.utils.rnn.pad_sequence([i["input_ids"] for i in instances], batch_first=True, padding_value=pad_id)
        labels = torch.nn.utils.rnn.pad_sequence([i["labels"] for i in instances], batch_first=True, padding_value=IGNORE_INDEX)
        max_length = self.tokenizer.model_max_length
        input_ids, labels = input_ids[:, :max_length], labels[:, :max_length]
        lengths = torch.tensor([len(i["input_ids"]) for i in instances])
        attention_mask = torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        images = [i["image"] for i in instances if "image" in i]
        if images:
            same = all(x.shape == images[0].shape for x in images) and images[0].ndim == 3
            batch["images"] = torch.stack(images) if same else images
            batch["image_sizes"] = [i["image_size"] for i in instances if "image" in i]
        return batch


def make_supervised_data_module(samples: list[dict], tokenizer, data_args, template_name: str) -> dict:
    train_dataset = LazySupervisedDataset(samples, tokenizer, data_args, template_name)
    return {"train_dataset": train_dataset, "eval_dataset": None, "data_collator": DataCollatorForSupervisedDataset(tokenizer)}
