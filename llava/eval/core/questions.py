"""Question files in the layouts LLaVA's workers read, and the items the eval core answers.

A reader returns `Row`s: the raw record plus where it came from ("file:line"), so that every error about a
question names the line to fix. A worker turns a row into one or more `Item`s (MMBench with --all-rounds
asks each question once per rotation of its options); each item becomes one answer line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from PIL import Image

from llava.mm_utils import load_image, load_image_from_base64

if TYPE_CHECKING:
    from llava.video import VideoRef


class QuestionFileError(ValueError):
    """A question file or one of its records is unusable; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One record of a question file; `location` is "path:line" (or "path[i]" for a JSON list)."""

    location: str
    data: dict[str, Any]

    def require(self, *fields: str) -> None:
        missing = [f for f in fields if f not in self.data]
        if missing:
            raise QuestionFileError(f"{self.location}: missing field(s) {', '.join(map(repr, missing))}")

    def text(self, field: str) -> str:
        """A field that must hold a string (a question's text, an image's file name)."""
        self.require(field)
        return self._typed(field, str, "a string")

    def key(self, field: str) -> str | int:
        """A question's id: a string or an integer, as the scorers match answers to questions by it."""
        self.require(field)
        value = self._typed(field, (str, int), "a string or an integer")
        if isinstance(value, bool):
            self._wrong_type(field, "a string or an integer")
        return value

    def _typed(self, field: str, types: type | tuple[type, ...], expected: str) -> Any:
        value = self.data[field]
        if not isinstance(value, types):
            self._wrong_type(field, expected)
        return value

    def _wrong_type(self, field: str, expected: str) -> None:
        value = self.data[field]
        got = "null" if value is None else f"{type(value).__name__} {json.dumps(value, default=str)[:60]}"
        raise QuestionFileError(f"{self.location}: field {field!r} must be {expected}, got {got}")


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An image of a question: a file (path or URL) or base64 bytes embedded in the question file (MMBench)."""

    path: str | None = None
    base64: str | None = None

    def describe(self) -> str:
        return self.path if self.path is not None else "<base64 image>"

    def open(self) -> Image.Image:
        """The RGB image; FileNotFoundError / ValueError with a message naming it when it cannot be read."""
        if self.path is not None:
            return load_image(self.path)
        try:
            return load_image_from_base64(self.base64 or "").convert("RGB")
        except Image.DecompressionBombError as exc:
            raise ValueError(f"cannot decode the base64 image: too large ({exc})") from exc
        except (OSError, SyntaxError, ValueError) as exc:  # binascii.Error is a ValueError
            raise ValueError(f"cannot decode the base64 image: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Item:
    """One question to answer.

    record: the answer line's fields known before generation, in output order (`question_id`, `prompt`,
        and worker extras such as MMBench's `round_id`, `options`, `option_char`).
    text: the user turn as the model sees it, without image tokens (the core inserts those).
    videos: the question's videos (`llava.video.VideoRef`: a path and how to sample its frames), given to the
        model before its images.
    """

    record: dict[str, Any]
    text: str
    images: tuple[ImageRef, ...] = ()
    videos: tuple[VideoRef, ...] = ()


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise QuestionFileError(f"question file not found: {path}")


def _read_text(path: str) -> str:
    """The file's text; bytes that are not UTF-8 are reported with the line and column they sit at."""
    _check_file(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise QuestionFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "save the file as UTF-8"
        ) from None


def _object_row(location: str, data: Any) -> Row:
    if not isinstance(data, dict):
        raise QuestionFileError(f"{location}: expected a JSON object, got {type(data).__name__}")
    return Row(location, data)


def read_jsonl(path: str) -> list[Row]:
    """LLaVA's question JSONL: one JSON object per line; blank lines are ignored."""
    rows = []
    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if line.strip():
            try:
                rows.append(_object_row(f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise QuestionFileError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def read_json_list(path: str) -> list[Row]:
    """A JSON list of objects (ScienceQA's llava_test_CQM-A.json)."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise QuestionFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise QuestionFileError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    return [_object_row(f"{path}[{i}]", entry) for i, entry in enumerate(data)]


def read_json_list_by_position(path: str) -> list[Row]:
    """A JSON list whose entries carry no usable id (OCRBench's `id` repeats across its source datasets,
    LLVisionQA's entries have none): each row gets its position in the file as `question_id`, which the
    scorers pair the answers by."""
    return [Row(row.location, {**row.data, "question_id": i}) for i, row in enumerate(read_json_list(path))]


# LLaVA reads the MMBench TSVs with pandas.read_table, whose default missing-value strings these are; a cell
# holding one of them is "no value" (e.g. a question without hint, or option D of a 3-option question).
PANDAS_NA_VALUES = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


def _tsv_value(text: str) -> str | None:
    """None for pandas' missing values, else the cell's text."""
    return None if text in PANDAS_NA_VALUES else text


def read_tsv(path: str, required_columns: tuple[str, ...] = ()) -> list[Row]:
    """A tab-separated table with a header row (MMBench); cells are strings, or None where pandas sees NaN."""
    text = _read_text(path)
    # Base64 images make cells far larger than csv's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows = []
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise QuestionFileError(f"{path}: empty file (expected a header row)")
        missing = [c for c in required_columns if c not in header]
        if missing:
            raise QuestionFileError(f"{path}:1: missing column(s) {', '.join(missing)}")
        line_start = reader.line_num + 1
        for cells in reader:
            location = f"{path}:{line_start}"
            line_start = reader.line_num + 1
            if not any(cells):
                continue
            if len(cells) != len(header):
                raise QuestionFileError(f"{location}: {len(cells)} cells, the header has {len(header)}")
            rows.append(Row(location, {name: _tsv_value(cell) for name, cell in zip(header, cells)}))
    return rows
