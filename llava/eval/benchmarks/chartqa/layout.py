"""ChartQA's release layout, shared by the worker, the scorer and the sample writer (stdlib only).

The release (vis-nlp/ChartQA, the "ChartQA Dataset" folder; also `ChartQA Dataset.zip` in the Hugging Face
dataset ahmed-masry/ChartQA) keeps each split in a folder of its own:

    ChartQA Dataset/test/test_human.json       human-written questions: a JSON list of {"imgname", "query", "label"}
    ChartQA Dataset/test/test_augmented.json   machine-generated questions, same fields
    ChartQA Dataset/test/png/<imgname>         the chart images

(`val/` and `train/` are laid out the same way.) Neither file gives its questions an id, and image names repeat
within a file (two questions a chart), so an answer's `question_id` is "<set>/<position>": "human/0" is the first
entry of test_human.json, "augmented/0" the first of test_augmented.json.
"""

from __future__ import annotations

import os

SETS = ("human", "augmented")  # ChartQA's two question sets, in the order lmms-eval concatenates them
TEST_FOLDER = "ChartQA Dataset/test"


class LayoutError(ValueError):
    """A path that is not ChartQA's split folder or one of its question files."""


def question_id(question_set: str, position: int) -> str:
    return f"{question_set}/{position}"


def parse_question_id(value: object) -> tuple[str, int] | None:
    """("human", 3) for "human/3"; None for anything else."""
    question_set, _, position = str(value).partition("/")
    if question_set in SETS and position.isdigit() and str(int(position)) == position:
        return question_set, int(position)
    return None


def question_files(path: str) -> list[tuple[str, str]]:
    """(set, file) pairs for `path`: a split folder (`ChartQA Dataset/test`) gives both of its files,
    <folder>_human.json then <folder>_augmented.json; one question file (`test_human.json`) gives its set."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        split = os.path.basename(os.path.normpath(path))
        files = [(s, os.path.join(path, f"{split}_{s}.json")) for s in SETS]
        missing = [f for _, f in files if not os.path.isfile(f)]
        if missing:
            raise LayoutError(f"{path}: not a ChartQA split folder, it lacks {' and '.join(missing)}")
        return files
    if not os.path.isfile(path):
        raise LayoutError(f"not found: {path}")
    for s in SETS:
        if os.path.basename(path).endswith(f"_{s}.json"):
            return [(s, path)]
    raise LayoutError(f"{path}: expected ChartQA's split folder (ChartQA Dataset/test) or one of its question "
                      "files (test_human.json, test_augmented.json)")
