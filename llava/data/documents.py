"""Documents and infographics in the tiny model's world: what DocVQA and InfographicVQA ask, at its scale.

The tiny model reads the 12 WORDS, colours, shapes, counts and the 3x3 grid of 112 px cells, so a page here is
made of exactly those, drawn by the scene renderer (`llava.data.shapes`: same font, ink, stroke and sizes):

- a document: a white 336x336 page ruled as a 3x3 table, 4-9 of its cells holding one distinct WORD each.
  "What word is in the top right cell?", "Which word is under CAT?" (a form's field looked up by place or by
  its neighbour: DocVQA's table/list and layout questions);
- an infographic: a legend, a column of coloured shapes each with a WORD in the cell to its right, plus loose
  shapes in the column left of the legend. "What word is next to the red star?", "How many stars are there?",
  "What color is the shape next to CAT?" (text tied to a visual element, counting: InfographicVQA's kinds).

Every answer needs one cell's fine detail, so pruning the wrong image tokens costs answers. Word answers are
lower-case as the scene world's (`ask_word`); the benchmark files write them as drawn, in capitals (ANLS
lower-cases both sides). Like scenes, every page belongs to one split by a stable hash of its content
(`document_split`, `infographic_split`, the same rule as `scene_split`), so eval pages never occur in
training data made from the same generator with split="train".
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

from llava.data.questions import QA, ask_count, distinct_questions
from llava.data.scenes import (
    BACKGROUNDS, CELL, COLORS, EVAL_BUCKETS, GRID, IMAGE_SIZE, KINDS, SIZES, WORD_MAX_WIDTH, WORDS, Scene, Shape, Word,
    cell_center,
)
from llava.data.shapes import draw_word, render  # the scene world's word drawing: same font, size and ink

# Cell names of a table (reading order). The scene world's POSITIONS name the same cells for objects.
CELL_NAMES = (
    "top left", "top middle", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom middle", "bottom right",
)
# "Which word is <relation> X?": the cell holding the answer, from X's (row, column).
NEIGHBOURS: dict[str, tuple[int, int]] = {
    "under": (1, 0), "above": (-1, 0), "to the left of": (0, -1), "to the right of": (0, 1),
}
PAGE = "white"
RULE_INK = (150, 150, 150)  # the table's rules: lighter than the words' ink
RULE_WIDTH = 2


def _split(signature: str) -> str:
    """scenes.scene_split's rule on any signature: one content hash in EVAL_BUCKETS is held out."""
    return "eval" if zlib.crc32(signature.encode()) % EVAL_BUCKETS == 0 else "train"


def _word(rng: random.Random, text: str, cell: int) -> Word:
    """A word centred in its cell, jittered as scenes place theirs (a 4 px margin to the cell border)."""
    cx, cy = cell_center(cell)
    slack = max(0, (CELL - WORD_MAX_WIDTH) // 2 - 4)
    return Word(text, cell, cx + rng.randint(-slack, slack), cy + rng.randint(-slack, slack))


def _shape(rng: random.Random, kind: str, color: str, cell: int) -> Shape:
    size = rng.choice(tuple(SIZES))
    extent = rng.randint(*SIZES[size])
    cx, cy = cell_center(cell)
    slack = max(0, (CELL - extent) // 2 - 4)
    return Shape(kind, color, size, cell, cx + rng.randint(-slack, slack), cy + rng.randint(-slack, slack), extent)


def _draw_words(image: Image.Image, words: tuple[Word, ...]) -> Image.Image:
    draw = ImageDraw.Draw(image)
    for word in words:
        draw_word(draw, word)
    return image


def _retry(draw: Callable[[], object], split: str | None, split_of: Callable[[object], str], max_tries: int):
    if split not in (None, "train", "eval"):
        raise ValueError(f"split must be 'train', 'eval' or None, got {split!r}")
    for _ in range(max_tries):
        made = draw()
        if split is None or split_of(made) == split:
            return made
    raise RuntimeError(f"no {split} page found in {max_tries} draws")


# ---------------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Document:
    """A ruled 3x3 table; `words` one per filled cell, sorted by cell, all different."""

    words: tuple[Word, ...]
    background: str = PAGE

    @property
    def shapes(self) -> tuple[Shape, ...]:
        return ()  # a page of text: nothing but words (scene-shaped code may look for shapes)

    def word_at(self, cell: int) -> Word | None:
        return next((w for w in self.words if w.cell == cell), None)

    def find(self, text: str) -> Word | None:
        return next((w for w in self.words if w.text == text), None)

    def signature(self) -> str:
        return "document|" + "|".join(f"{w.text}@{w.cell}" for w in self.words)

    def to_dict(self) -> dict:
        return {"type": "document", "background": self.background, "words": [asdict(w) for w in self.words]}

    @classmethod
    def from_dict(cls, d: dict) -> "Document":
        return cls(tuple(Word(**w) for w in d["words"]), d.get("background", PAGE))


def document_split(doc: Document) -> str:
    return _split(doc.signature())


def sample_document(rng: random.Random, n_words: int | None = None, split: str | None = "train",
                    max_tries: int = 1000) -> Document:
    """A table with `n_words` (4..9; None: uniform) distinct WORDS in random cells, from `split` (None: any)."""
    if n_words is not None and not 4 <= n_words <= GRID * GRID:
        raise ValueError(f"n_words must be in 4..9, got {n_words}")

    def draw() -> Document:
        n = n_words if n_words is not None else rng.randint(4, GRID * GRID)
        texts, cells = rng.sample(WORDS, n), sorted(rng.sample(range(GRID * GRID), n))
        return Document(tuple(_word(rng, t, c) for t, c in zip(texts, cells)))

    return _retry(draw, split, document_split, max_tries)


def render_document(doc: Document) -> Image.Image:
    """The page: the table's outer border and inner rules (on the cell borders, clear of the words), then words."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[doc.background])
    draw = ImageDraw.Draw(image)
    last = IMAGE_SIZE - 1
    draw.rectangle((0, 0, last, last), outline=RULE_INK, width=RULE_WIDTH)
    for k in range(1, GRID):
        at = k * CELL - RULE_WIDTH // 2
        draw.rectangle((at, 0, at + RULE_WIDTH - 1, last), fill=RULE_INK)
        draw.rectangle((0, at, last, at + RULE_WIDTH - 1), fill=RULE_INK)
    return _draw_words(image, doc.words)


def ask_cell(doc: Document, rng: random.Random) -> QA | None:
    """"What word is in the top right cell?" about a filled cell."""
    word = rng.choice(doc.words)
    return QA("doc_cell", f"What word is in the {CELL_NAMES[word.cell]} cell?", word.text.lower(), detail="cell")


def ask_neighbour(doc: Document, rng: random.Random) -> QA | None:
    """"Which word is under CAT?": the word in the adjacent cell (in the same row for left / right)."""
    pairs = []
    for word in doc.words:
        row, col = divmod(word.cell, GRID)
        for relation, (dr, dc) in NEIGHBOURS.items():
            r, c = row + dr, col + dc
            other = doc.word_at(r * GRID + c) if 0 <= r < GRID and 0 <= c < GRID else None
            if other is not None:
                pairs.append((relation, word, other))
    if not pairs:
        return None
    relation, word, other = rng.choice(pairs)
    return QA("doc_neighbour", f"Which word is {relation} {word.text}?", other.text.lower(), detail=relation)


DOCUMENT_TYPES: dict[str, Callable[[Document, random.Random], QA | None]] = {
    "doc_cell": ask_cell, "doc_neighbour": ask_neighbour,
}


# ------------------------------------------------------------------------------------------- infographics


@dataclass(frozen=True)
class Infographic:
    """A legend: each of `labels` sits in the cell right of its shape; the other shapes stand in the column
    left of the legend, next to no word. Every labelled shape's colour + kind is unique on the page."""

    background: str
    shapes: tuple[Shape, ...]  # sorted by cell
    labels: tuple[Word, ...]  # sorted by cell

    def labelled(self) -> list[tuple[Shape, Word]]:
        """(shape, its label) for every legend entry."""
        by_cell = {s.cell: s for s in self.shapes}
        return [(by_cell[w.cell - 1], w) for w in self.labels]

    def scene(self) -> Scene:
        """The shapes as a scene (for the scene world's counting questions and renderer)."""
        return Scene(self.background, self.shapes)

    def signature(self) -> str:
        parts = [self.background] + [f"{s.size} {s.color} {s.kind}@{s.cell}" for s in self.shapes]
        return "infographic|" + "|".join(parts + [f"{w.text}@{w.cell}" for w in self.labels])

    def to_dict(self) -> dict:
        return {"type": "infographic", "background": self.background, "shapes": [asdict(s) for s in self.shapes],
                "labels": [asdict(w) for w in self.labels]}

    @classmethod
    def from_dict(cls, d: dict) -> "Infographic":
        return cls(d["background"], tuple(Shape(**s) for s in d["shapes"]), tuple(Word(**w) for w in d["labels"]))


def infographic_split(info: Infographic) -> str:
    return _split(info.signature())


def sample_infographic(rng: random.Random, n_labels: int | None = None, split: str | None = "train",
                       max_tries: int = 1000) -> Infographic:
    """2-3 legend entries (shape, word) in distinct rows, all in the same two columns; when the legend stands in
    the middle and right columns, 0-3 loose shapes in the left column. Labelled shapes differ in colour + kind
    from every other shape, so "the red star" names one entry."""
    if n_labels is not None and not 2 <= n_labels <= GRID:
        raise ValueError(f"n_labels must be in 2..3, got {n_labels}")

    def draw() -> Infographic:
        n = n_labels if n_labels is not None else rng.randint(2, GRID)
        rows = sorted(rng.sample(range(GRID), n))
        first = rng.randint(0, 1)  # the legend's shape column
        kinds = rng.sample([(c, k) for c in COLORS for k in KINDS], n)
        shapes = [_shape(rng, kind, color, row * GRID + first) for row, (color, kind) in zip(rows, kinds)]
        labels = [_word(rng, text, row * GRID + first + 1) for row, text in zip(rows, rng.sample(WORDS, n))]
        if first == 1:
            others = [(c, k) for c in COLORS for k in KINDS if (c, k) not in kinds]
            for row in sorted(rng.sample(range(GRID), rng.randint(0, GRID))):
                color, kind = rng.choice(others)
                shapes.append(_shape(rng, kind, color, row * GRID))
        return Infographic(rng.choice(tuple(BACKGROUNDS)), tuple(sorted(shapes, key=lambda s: s.cell)),
                           tuple(labels))

    return _retry(draw, split, infographic_split, max_tries)


def render_infographic(info: Infographic) -> Image.Image:
    return _draw_words(render(info.scene()), info.labels)


def ask_label(info: Infographic, rng: random.Random) -> QA | None:
    """"What word is next to the red star?"."""
    shape, word = rng.choice(info.labelled())
    return QA("info_label", f"What word is next to the {shape.color} {shape.kind}?", word.text.lower(),
              detail="label")


def ask_label_color(info: Infographic, rng: random.Random) -> QA | None:
    """"What color is the shape next to CAT?"."""
    shape, word = rng.choice(info.labelled())
    return QA("info_color", f"What color is the shape next to {word.text}?", shape.color, detail="color")


def ask_label_shape(info: Infographic, rng: random.Random) -> QA | None:
    """"What shape is next to CAT?"."""
    shape, word = rng.choice(info.labelled())
    return QA("info_shape", f"What shape is next to {word.text}?", shape.kind, detail="shape")


def ask_shape_count(info: Infographic, rng: random.Random) -> QA | None:
    """The scene world's counting questions ("How many stars are there?") over every shape on the page."""
    qa = ask_count(info.scene(), rng)
    return QA("info_count", qa.question, qa.answer, detail=qa.detail) if qa else None


INFOGRAPHIC_TYPES: dict[str, Callable[[Infographic, random.Random], QA | None]] = {
    "info_label": ask_label, "info_color": ask_label_color, "info_shape": ask_label_shape,
    "info_count": ask_shape_count,
}
LEGEND_TYPES = ("info_label", "info_color", "info_shape")  # a legend entry's word, colour or shape from another


Page = Document | Infographic


def render_page(page: Page) -> Image.Image:
    return render_document(page) if isinstance(page, Document) else render_infographic(page)


def page_qa_pairs(page: Page, rng: random.Random, types: tuple[str, ...] | list[str] | None = None, k: int = 2
                  ) -> list[QA]:
    """Up to `k` distinct questions about `page`, each of a type drawn uniformly from `types` (default: every
    type of its kind, DOCUMENT_TYPES or INFOGRAPHIC_TYPES; repeat a type to weight it)."""
    known = DOCUMENT_TYPES if isinstance(page, Document) else INFOGRAPHIC_TYPES
    types = tuple(types or known)
    unknown = set(types) - set(known)
    if unknown:
        raise ValueError(f"unknown question types {sorted(unknown)} for {type(page).__name__} pages; "
                         f"known: {sorted(known)}")
    return distinct_questions(lambda: known[rng.choice(types)](page, rng), k)


def drawn_answer(qa: QA) -> str:
    """The answer as the page shows it: a WORD in capitals, anything else as is (the benchmark files' form)."""
    return qa.answer.upper() if qa.answer.upper() in WORDS else qa.answer


def page_from_dict(d: dict) -> Page:
    """A page from its `to_dict()` (the ground truth the sample writers record)."""
    return {"document": Document, "infographic": Infographic}[d["type"]].from_dict(d)
