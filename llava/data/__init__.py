"""Synthetic image/text data for the tiny LLaVA: scenes, rendering, captions/QA, training sets, benchmarks.

Everything is seeded (`random.Random`, never the global RNG) and deterministic: same seed -> same bytes.
"""

from llava.data.layouts import DEFAULT_EVAL_SEED, write_eval_sets
from llava.data.questions import QA, QUESTION_TYPES, caption, corpus, prompt, qa_pairs
from llava.data.scenes import Scene, Shape, Word, sample_scene, scene_split
from llava.data.shapes import render
from llava.data.synthetic import write_described_set, write_training_set

__all__ = [
    "DEFAULT_EVAL_SEED",
    "QA",
    "QUESTION_TYPES",
    "Scene",
    "Shape",
    "Word",
    "caption",
    "corpus",
    "prompt",
    "qa_pairs",
    "render",
    "sample_scene",
    "scene_split",
    "write_described_set",
    "write_eval_sets",
    "write_training_set",
]
