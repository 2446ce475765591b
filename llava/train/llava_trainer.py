"""`LLaVATrainer`: the HF Trainer plus LLaVA's three additions.

1. `group_by_modality_length`: batches hold either image samples or text-only samples, of similar length.
2. `mm_projector_lr` / `mm_vision_tower_lr`: the projector / a trained vision tower gets its own learning rate.
3. `tune_mm_mlp_adapter` (stage 1): checkpoints hold only the projector (`mm_projector.bin`), as LLaVA's.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch.utils.data import Sampler
from transformers import Trainer
from transformers.trainer_pt_utils import get_parameter_names

logger = logging.getLogger(__name__)


def gathered(params):
    """A context in which DeepSpeed ZeRO-3 partitioned parameters are whole (a no-op otherwise)."""
    partitioned = [p for p in params if hasattr(p, "ds_id")]
    if not partitioned:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None)


def gather_state_dict(model, keep) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters `keep(name, param)` selects, whole even under ZeRO-3."""
    named = [(n, p) for n, p in model.named_parameters() if keep(n, p)]
    with gathered([p for _, p in named]):
        return {n: p.detach().cpu().clone() for n, p in named}


def modality_grouped_indices(lengths: list[int], batch_size: int, generator=None) -> list[int]:
    """Indices so that each batch is all-image (length > 0) or all-text (length < 0), longest first inside
    each megabatch, megabatches in random order (LLaVA's `get_modality_length_grouped_indices`, simplified
    to one process; the HF sampler wrapper shards it across processes)."""
    groups = [[i for i, n in enumerate(lengths) if n > 0], [i for i, n in enumerate(lengths) if n < 0]]
    batches = []
    for group in groups:
        order = [group[j] for j in torch.randperm(len(group), generator=generator).tolist()]
        for start in range(0, len(order), batch_size):
            chunk = sorted(order[start : start + batch_size], key=lambda i: -abs(lengths[i]))
            batches.append(chunk)
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [i for b in shuffled for i in batches[b]]


class ModalityLengthGroupedSampler(Sampler):
    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        return iter(modality_grouped_indices(self.lengths, self.batch_size, generator))


class LLaVATrainer(Trainer):
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_modality_length:
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return ModalityLengthGroupedSampler(dataset.modality_lengths, batch, seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self):
        own_lr = {"mm_projector": self.args.mm_projector_lr,
                  "vision_tower": self.args.mm_vision_tower_lr}
        own_lr = {part: lr for part, lr in own_lr.items() if lr is not None}
        if self.optimizer is not None or not own_lr:
            return super().create_optimizer()
        model = self.model
        decay = set(get_parameter_names(model, [torch.nn.LayerNorm])) - {n for n, _ in model.named_parameters() if "bias" in n}
        # One group per (part with its own learning rate or None, decayed or not), in a fixed order.
        groups: dict[tuple[str | None, bool], list] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                part = next((part for part in own_lr if part in name), None)
                groups.setdefault((part, name in decay), []).append(p)
        entries = []
        for part in (None, *own_lr):
            for decayed in (True, False):
                if groups.get((part, decayed)):
                    entry = {"params": groups[part, decayed], "weight_decay": self.args.weight_decay if decayed else 0.0}
                    if part is not None:
                        entry["lr"] = own_lr[part]
                    entries.append(entry)
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(entries, **optimizer_kwargs)
        return self.optimizer

    def _save_checkpoint(self, model, trial):
        if not getattr(self.args, "tune_mm_mlp_adapter", False):
            return super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        output_dir = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        save_projector(self.model, output_dir, self.args)

    def _save(self, output_dir: str | None = None, state_dict=None):
        if getattr(self.args, "tune_mm_mlp_adapter", False):
            return  # stage 1 saves the projector only (see _save_checkpoint and train.save_trained_model)
        return super()._save(output_dir, state_dict)


def save_projector(model, output_dir: str, args) -> None:
    """`mm_projector.bin` (LLaVA's stage-1 file) + the same tensors as `mm_projector.safetensors`."""
    from safetensors.torch import save_file

    keys = ["mm_projector"] + (["embed_tokens", "embed_in"] if getattr(args, "use_im_start_end", False) else [])
    state = gather_state_dict(model, lambda name, _: any(k in name for k in keys))
    if args.local_rank in (0, -1):
        os.makedirs(output_dir, exist_ok=True)
        model.config.save_pretrained(output_dir)
        torch.save(state, os.path.join(output_dir, "mm_projector.bin"))
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(output_dir, "mm_projector.safetensors"))
