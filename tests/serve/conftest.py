"""Session-wide servers for the serving tests.

`controller`: one controller (heartbeat expiration 2 s). `worker`: one worker on the seeded random tiny
checkpoint, registered with it (concurrency limit 2, heartbeat every 0.5 s, DART on by default with 128
selected tokens, small image limits so that the limit tests stay cheap). Tests that kill a process start
their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, start_controller, start_worker


@pytest.fixture(scope="session")
def serve_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_logs")


@pytest.fixture(scope="session")
def controller(serve_logs):
    proc, url = start_controller(serve_logs)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def worker(serve_logs, controller, tiny_ckpt):
    extra = ["--sparse", "--max_num_trunction", "128", "--max-image-pixels", str(MAX_IMAGE_PIXELS),
             "--max-image-bytes", str(MAX_IMAGE_BYTES)]
    proc, url = start_worker(serve_logs, controller, tiny_ckpt, extra=extra)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def qwen_ckpt(tmp_path_factory):
    from llava.model.tiny_qwen import build_tiny_qwen_checkpoint

    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp("qwen") / "qwen2-vl-tiny", "qwen2_vl", seed=1)


@pytest.fixture(scope="session")
def qwen_worker(serve_logs, controller, qwen_ckpt):
    """A worker on a tiny Qwen2-VL checkpoint, DART on at reduction ratio 0.5, served as "qwen-tiny"."""
    proc, url = start_worker(serve_logs, controller, qwen_ckpt, model_name="qwen-tiny",
                             extra=["--sparse", "--reduction_ratio", "0.5"])
    yield url
    proc.stop()
