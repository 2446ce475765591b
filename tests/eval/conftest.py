"""Fixtures of the eval tests."""

import pytest
from worker_helpers import SMALL_SET, write_textvqa_set


@pytest.fixture(scope="module")
def qa_set(tmp_path_factory):
    """A TextVQA-style set of `SMALL_SET` questions: (questions file, image folder)."""
    return write_textvqa_set(tmp_path_factory.mktemp("textvqa"), SMALL_SET)
