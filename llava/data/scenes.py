"""The synthetic scene model: a plain background, 1-4 shapes in a 3x3 grid and at most one word.

A scene is plain data (frozen dataclasses) that carries its own ground truth; `llava.data.shapes.render`
turns it into a 336x336 image (24x24 CLIP patches of 14 px, 8x8 patches per grid cell). Objects are
small relative to the image, so most patches are duplicated background: the tokens DART drops first.

Every scene belongs to exactly one split, decided by a stable hash of its content (`scene_split`), so the
held-out evaluation scenes can never occur in the training data, whatever seeds are used.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import asdict, dataclass

IMAGE_SIZE = 336
GRID = 3
CELL = IMAGE_SIZE // GRID  # 112 px

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (210, 210, 210),
    "beige": (245, 235, 210),
    "pink": (252, 228, 236),
}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 0),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
    "black": (20, 20, 20),
}
KINDS = ("circle", "square", "triangle", "star")
SIZES: dict[str, tuple[int, int]] = {"small": (40, 60), "large": (84, 104)}  # side of the bounding box, px
# Cell index = row * 3 + column, in reading order. Answers use these names; captions add a preposition.
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
WORDS = ("CAT", "DOG", "SUN", "TREE", "BOOK", "FISH", "BIRD", "CAKE", "MOON", "SHIP", "LAMP", "DOOR")
WORD_INK = (25, 25, 25)
WORD_MAX_WIDTH = 100  # px, so that the word stays inside its cell

EVAL_BUCKETS = 8  # one scene signature in 8 is reserved for evaluation


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    size: str  # "small" | "large"
    cell: int  # 0..8, see POSITIONS
    cx: int  # centre, px
    cy: int
    extent: int  # side of the bounding box, px

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    @property
    def box(self) -> tuple[int, int, int, int]:
        half = self.extent // 2
        return (self.cx - half, self.cy - half, self.cx - half + self.extent, self.cy - half + self.extent)


@dataclass(frozen=True)
class Word:
    text: str  # upper case as rendered; answers use text.lower()
    cell: int
    cx: int
    cy: int

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]  # sorted by cell
    word: Word | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        word = Word(**d["word"]) if d.get("word") else None
        return cls(d["background"], tuple(Shape(**s) for s in d["shapes"]), word)

    def signature(self) -> str:
        """What the scene shows, ignoring pixel jitter: two scenes with equal signatures ask the same questions."""
        parts = [self.background] + [f"{s.size} {s.color} {s.kind}@{s.cell}" for s in self.shapes]
        if self.word:
            parts.append(f"{self.word.text}@{self.word.cell}")
        return "|".join(parts)

    # Ground-truth helpers used by the question templates.
    def with_kind(self, kind: str) -> list[Shape]:
        return [s for s in self.shapes if s.kind == kind]

    def with_color(self, color: str) -> list[Shape]:
        return [s for s in self.shapes if s.color == color]

    def has(self, color: str, kind: str) -> bool:
        return any(s.color == color and s.kind == kind for s in self.shapes)


def cell_center(cell: int) -> tuple[int, int]:
    row, col = divmod(cell, GRID)
    return col * CELL + CELL // 2, row * CELL + CELL // 2


def scene_split(scene: Scene) -> str:
    """"eval" or "train", from a stable hash (crc32, not Python's salted hash) of the scene signature."""
    return "eval" if zlib.crc32(scene.signature().encode()) % EVAL_BUCKETS == 0 else "train"


def _place(rng: random.Random, cell: int, extent: int) -> tuple[int, int]:
    """A centre inside `cell` such that a box of side `extent` keeps a 4 px margin to the cell border."""
    cx, cy = cell_center(cell)
    slack = max(0, (CELL - extent) // 2 - 4)
    return cx + rng.randint(-slack, slack), cy + rng.randint(-slack, slack)


def _draw_scene(rng: random.Random, n_shapes: int | None, with_word: bool | None, word_prob: float) -> Scene:
    n = n_shapes if n_shapes is not None else rng.randint(1, 4)
    if with_word is None:
        with_word = rng.random() < word_prob
    cells = rng.sample(range(GRID * GRID), n + (1 if with_word else 0))
    shapes = []
    for cell in sorted(cells[:n]):
        size = rng.choice(tuple(SIZES))
        extent = rng.randint(*SIZES[size])
        cx, cy = _place(rng, cell, extent)
        shapes.append(Shape(rng.choice(KINDS), rng.choice(tuple(COLORS)), size, cell, cx, cy, extent))
    word = None
    if with_word:
        cell = cells[n]
        cx, cy = _place(rng, cell, WORD_MAX_WIDTH)
        word = Word(rng.choice(WORDS), cell, cx, cy)
    return Scene(rng.choice(tuple(BACKGROUNDS)), tuple(shapes), word)


def sample_scene(
    rng: random.Random,
    n_shapes: int | None = None,
    with_word: bool | None = None,
    word_prob: float = 0.4,
    split: str | None = "train",
    max_tries: int = 1000,
) -> Scene:
    """Draw a scene from `rng` (never the global RNG).

    n_shapes: 1..4, or None for uniform over 1..4. with_word: force a word on/off, else present with
    probability `word_prob`. split: "train" / "eval" keeps drawing until the scene falls in that split
    (see `scene_split`); None accepts any scene.
    """
    if n_shapes is not None and not 1 <= n_shapes <= 4:
        raise ValueError(f"n_shapes must be in 1..4, got {n_shapes}")
    if split not in (None, "train", "eval"):
        raise ValueError(f"split must be 'train', 'eval' or None, got {split!r}")
    for _ in range(max_tries):
        scene = _draw_scene(rng, n_shapes, with_word, word_prob)
        if split is None or scene_split(scene) == split:
            return scene
    raise RuntimeError(f"no {split} scene found in {max_tries} draws")
