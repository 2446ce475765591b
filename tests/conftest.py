"""Shared fixtures: tiny seeded checkpoints in the original LLaVA on-disk format, built once per session."""

import pytest
import torch

from llava.model.tiny_checkpoint import build_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "llava-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_image():
    """A 336x336 RGB image with structure (a bright square on a dark background) so features vary."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(336, 336, 3, generator=g) * 40).to(torch.uint8)
    pixels[100:200, 120:220] = torch.tensor([220, 40, 40], dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())
