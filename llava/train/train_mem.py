"""LLaVA's GPU entry point (`deepspeed llava/train/train_mem.py ...`): flash-attention when it can run."""

import logging

import torch

from llava.model.builder import choose_attn_implementation
from llava.train.train import train

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train(attn_implementation=choose_attn_implementation("flash_attention_2", use_flash_attn=False, device=device))
