"""Training data read and checked in full before anything else happens.

A bad sample found by the data loader stops a run after the model has loaded (minutes on real weights) or,
worse, hours into it. Here the whole file is read and every sample checked up front: a missing image file,
a conversation that does not start with the human's turn or does not alternate, a wrong structure. The
error names the file, each bad sample's index and id, and the problem.
"""

from __future__ import annotations

import json
import os
from typing import Any

from llava.conversation import SeparatorStyle, get_conv_template
from llava.train.preprocess import ROLE_OF_SPEAKER

# How many bad samples one error lists (the count of all of them comes with it).
LISTED_PROBLEMS = 5

SAMPLE_FORMAT = 'a JSON list of {"id", "image"?, "conversations": [{"from": "human" | "gpt", "value": "..."}, ...]}'


class TrainingDataError(ValueError):
    """The training data cannot be trained on; the message names the file, the samples and the problems."""


def load_training_samples(data_path: str | None, image_folder: str | None, template_name: str,
                          with_images: bool = True) -> list[dict[str, Any]]:
    """The samples of `data_path` (LLaVA's conversation JSON), every one checked; raises TrainingDataError.

    with_images: whether the model takes images (a --vision_tower is given); without one a sample with an
    "image" is an error, as nothing could encode it.
    """
    samples = read_samples(data_path)
    min_turns = 2 if get_conv_template(template_name).sep_style == SeparatorStyle.PLAIN else 1
    problems = []
    for index, sample in enumerate(samples):
        problem = sample_problem(sample, image_folder, with_images, min_turns)
        if problem is not None:
            problems.append(f"sample {index}{_id_note(sample)}: {problem}")
    if problems:
        listed = "\n  ".join(problems[:LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - LISTED_PROBLEMS} more" if len(problems) > LISTED_PROBLEMS else ""
        raise TrainingDataError(f"{data_path}: {len(problems)} of {len(samples)} samples cannot be trained on:\n  "
                                f"{listed}{more}")
    return samples


def read_samples(data_path: str | None) -> list[Any]:
    """The JSON list in `data_path`, not yet checked sample by sample."""
    if not data_path:
        raise TrainingDataError(f"--data_path is required: {SAMPLE_FORMAT}")
    try:
        with open(data_path, encoding="utf-8") as f:
            samples = json.load(f)
    except FileNotFoundError:
        raise TrainingDataError(f"training data not found: {data_path}") from None
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{data_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{data_path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") \
            from None
    if not isinstance(samples, list):
        raise TrainingDataError(f"{data_path}: expected {SAMPLE_FORMAT}; got a JSON {_json_type(samples)}")
    if not samples:
        raise TrainingDataError(f"{data_path}: the list holds no samples")
    return samples


def sample_problem(sample: Any, image_folder: str | None, with_images: bool, min_turns: int = 1) -> str | None:
    """What makes one sample untrainable, or None."""
    if not isinstance(sample, dict):
        return f"expected a JSON object, got a JSON {_json_type(sample)}"
    if "conversations" not in sample:
        return "no 'conversations'"
    problem = conversation_problem(sample["conversations"], min_turns)
    if problem is None and "image" in sample:
        problem = image_problem(sample["image"], image_folder, with_images)
    return problem


def conversation_problem(conversations: Any, min_turns: int) -> str | None:
    """Turns must be {"from", "value"} objects, alternating human / gpt from the human's."""
    if not isinstance(conversations, list):
        return f"'conversations' must be a list of turns, got a JSON {_json_type(conversations)}"
    if len(conversations) < min_turns:
        return (f"'conversations' has {len(conversations)} turn(s); this template needs a human turn and a gpt answer"
                if min_turns > 1 else "'conversations' is empty")
    speakers = list(ROLE_OF_SPEAKER)
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            return f"turn {i} must be an object with 'from' and 'value', got {json.dumps(turn)[:80]}"
        if turn["from"] not in ROLE_OF_SPEAKER:
            return f"turn {i} is from {turn['from']!r}; the roles are {' and '.join(map(repr, speakers))}"
        if not isinstance(turn["value"], str):
            return f"turn {i}'s 'value' must be a string, got a JSON {_json_type(turn['value'])}"
        expected = speakers[i % 2]
        if turn["from"] != expected:
            if i == 0:
                return f"the conversation starts with {turn['from']!r}; the first turn must be the {expected!r} one"
            return f"turn {i} is from {turn['from']!r} where {expected!r} was expected: turns must alternate"
    return None


def image_problem(image: Any, image_folder: str | None, with_images: bool) -> str | None:
    if not with_images:
        return "has an 'image' but the model takes none (no --vision_tower)"
    if not isinstance(image, str):
        return f"'image' must be a file name, got a JSON {_json_type(image)}"
    if not image_folder:
        return f"has an image ({image}) but no --image_folder is given"
    path = os.path.join(image_folder, image)
    if not os.path.isfile(path):
        return f"image not found: {path}"
    return None


def _id_note(sample: Any) -> str:
    if isinstance(sample, dict) and "id" in sample:
        return f" (id {sample['id']!r})"
    return ""


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
