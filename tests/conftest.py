"""Shared fixtures: tiny seeded checkpoints in the original LLaVA on-disk format, built once per session, and
the scripts under scripts/tiny/ as modules."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from llava.model.tiny_checkpoint import build_tiny_checkpoint
from suite_threads import WORKER_THREADS


def pytest_configure(config):
    """A pytest-xdist worker (scripts/run_tests.sh starts one per core) computes on one thread, and so do the model
    subprocesses it starts (they inherit OMP_NUM_THREADS): as many busy threads as cores, never more."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = WORKER_THREADS
        torch.set_num_threads(int(WORKER_THREADS))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "llava-tiny", seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's in-process runs, as its single-threaded worker subprocesses use: answers must
    match bit for bit across processes, and on a busy 2-core machine multi-threaded CPU kernels crawl
    (`pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_image():
    """A 336x336 RGB image with structure (a bright square on a dark background) so features vary."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(336, 336, 3, generator=g) * 40).to(torch.uint8)
    pixels[100:200, 120:220] = torch.tensor([220, 40, 40], dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


@pytest.fixture(scope="session")
def tiny_script():
    """tiny_script("make_tokenizer") imports scripts/tiny/make_tokenizer.py (scripts/ is not a package)."""
    folder = Path(__file__).resolve().parents[1] / "scripts" / "tiny"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


LLAVA_NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672]]


@pytest.fixture(scope="session")
def to_llava_next():
    """to_llava_next(path) turns a tiny LLaVA-1.5 checkpoint into LLaVA-1.6's layout (anyres, spatial_unpad),
    with the row separator `model.image_newline` that such a checkpoint carries (seeded, LLaVA's scale)."""
    import json

    from safetensors.torch import load_file, save_file

    def convert(path: Path, with_newline: bool = True) -> Path:
        config = json.loads((path / "config.json").read_text())
        config.update(image_aspect_ratio="anyres", image_grid_pinpoints=LLAVA_NEXT_PINPOINTS,
                      mm_patch_merge_type="spatial_unpad")
        (path / "config.json").write_text(json.dumps(config))
        if with_newline:
            state = load_file(path / "model.safetensors")
            width = config["hidden_size"]
            state["model.image_newline"] = torch.randn(width, generator=torch.Generator().manual_seed(7)) * width**-0.5
            save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
        return path

    return convert


@pytest.fixture(scope="session")
def write_bomb_png():
    """write_bomb_png(path) writes a small PNG whose header says 20000x20000: past PIL's decompression-bomb
    limit (Image.open refuses it before decoding), as a 20000x20000 upload is, in a few hundred bytes."""
    import io
    import struct
    import zlib

    from PIL import Image

    def write(path: Path) -> Path:
        buffer = io.BytesIO()
        Image.new("L", (1, 1)).save(buffer, format="PNG")
        data = bytearray(buffer.getvalue())
        # IHDR's data starts after the 8-byte signature and the chunk's length and type (8 bytes).
        data[16:24] = struct.pack(">II", 20000, 20000)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        path.write_bytes(bytes(data))
        return path

    return write
