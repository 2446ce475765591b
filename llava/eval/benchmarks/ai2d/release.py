"""AI2D's release as people download it, read the same way by the worker and the scorer.

ai2d-all.zip (allenai) unpacks to ai2d/ with questions/<image>.json, images/<image>, abc_images/<image>,
annotations/ and categories.json; the test split is the separate ai2d_test_ids.csv (one image id a line, e.g.
"1024"), kept beside questions/ here. A question file (questions/1024.png.json) is

    {"imageName": "1024.png",
     "questions": {"<question text>": {"abcLabel": false, "answerTexts": ["...", ...], "correctAnswer": 2,
                                       "questionId": "1024.png-0"}, ...}}

`abcLabel` questions refer to letters that replace the diagram's text: their image is abc_images/<image>, the
others' images/<image> (as InternVL's and VLMEvalKit's readers take them; lmms-eval's lmms-lab/ai2d ships the
images already chosen). A test id whose question file is missing is left out with a warning (an image
without questions); none found at all is an error (a wrong folder).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

logger = logging.getLogger(__name__)


class Ai2dFileError(ValueError):
    """A file of the release is missing or malformed; the message names the file (and line)."""


@dataclasses.dataclass(frozen=True)
class Question:
    question_id: str  # questionId, e.g. "1024.png-0"
    question: str
    options: tuple[str, ...]  # answerTexts
    correct: int  # correctAnswer: index into options
    abc_label: bool
    image_name: str  # imageName
    location: str  # the question file


def default_questions_folder(test_ids: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(test_ids)), "questions")


def image_path(folder: str, question: Question) -> str:
    return os.path.join(folder, "abc_images" if question.abc_label else "images", question.image_name)


def read_test_ids(path: str) -> list[tuple[str, str]]:
    """(location "path:line", image id) for each id of ai2d_test_ids.csv; a first line that is not an id
    (a header) and blank lines are skipped, an id written as "1024.png" is read as "1024"."""
    if not os.path.isfile(path):
        raise Ai2dFileError(f"test ids file not found: {path} (AI2D's ai2d_test_ids.csv)")
    ids = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            image_id = line.strip().strip('"').removesuffix(".png")
            if not image_id or (lineno == 1 and not image_id.isdigit()):
                continue
            if "," in image_id or "\t" in image_id:
                raise Ai2dFileError(f"{path}:{lineno}: expected one image id a line, got {line.strip()!r}")
            ids.append((f"{path}:{lineno}", image_id))
    return ids


def _field(location: str, text: str, entry: dict, name: str, fits, expected: str):
    if name not in entry:
        raise Ai2dFileError(f"{location}: question {text!r} lacks {name!r}")
    if not fits(entry[name]):
        raise Ai2dFileError(f"{location}: question {text!r}: {name!r} must be {expected}, got {entry[name]!r}")
    return entry[name]


def _is_index(value) -> bool:
    """An int, or a string of digits as lmms-lab/ai2d keeps it (a bool is not an index)."""
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.isdigit()


def read_question_file(path: str) -> list[Question]:
    """The questions of one question file, in file order."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise Ai2dFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("imageName"), str) \
            or not isinstance(data.get("questions"), dict):
        raise Ai2dFileError(f"{path}: expected {{\"imageName\": ..., \"questions\": {{...}}}}")
    questions = []
    for text, entry in data["questions"].items():
        if not isinstance(entry, dict):
            raise Ai2dFileError(f"{path}: question {text!r} must be an object")
        options = _field(path, text, entry, "answerTexts",
                         lambda v: isinstance(v, list) and 0 < len(v) <= 26 and all(isinstance(o, str) for o in v),
                         "a list of 1-26 strings")
        correct = int(_field(path, text, entry, "correctAnswer", _is_index, "an option index"))
        if not correct < len(options):
            raise Ai2dFileError(f"{path}: question {text!r}: 'correctAnswer' {correct} is not an index of its "
                                f"{len(options)} answerTexts")
        questions.append(Question(
            question_id=_field(path, text, entry, "questionId", lambda v: isinstance(v, str), "a string"),
            question=text, options=tuple(options), correct=correct,
            abc_label=_field(path, text, entry, "abcLabel", lambda v: isinstance(v, bool), "true or false"),
            image_name=data["imageName"], location=path))
    return questions


def questions_of(image_id: str, questions_folder: str) -> list[Question] | None:
    """The questions about one image, or None when it has no question file."""
    path = os.path.join(questions_folder, f"{image_id}.png.json")
    return read_question_file(path) if os.path.isfile(path) else None


def read_split(test_ids: str, questions_folder: str | None = None) -> list[Question]:
    """Every question about the images of `test_ids`, in the file's order (questions in file order)."""
    ids = read_test_ids(test_ids)
    folder = questions_folder or default_questions_folder(test_ids)
    if not os.path.isdir(folder):
        raise Ai2dFileError(f"questions folder not found: {folder} (AI2D's ai2d/questions/)")
    questions, missing = [], []
    for location, image_id in ids:
        found = questions_of(image_id, folder)
        if found is None:
            missing.append(f"{image_id} ({location})")
        else:
            questions.extend(found)
    warn_missing(missing, folder)
    if not questions:
        raise Ai2dFileError(f"no question file in {folder} for any id of {test_ids}")
    return questions


def warn_missing(missing: list[str], folder: str) -> None:
    if missing:
        logger.warning("%d AI2D test images have no question file in %s, left out: %s%s", len(missing), folder,
                       ", ".join(missing[:3]), " ..." if len(missing) > 3 else "")
