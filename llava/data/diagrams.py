"""Diagrams and capability questions: the content behind the AI2D and MMStar sample sets (and their training data).

Diagrams (AI2D's kind of image) are drawn from the scene world, so that the tiny model needs nothing new to see:
two to four of its shapes, each in a corner cell of the 3x3 grid with one of its WORDS below it as a label (the
same renderer, font and ink as a scene's word), joined by arrows. Nodes sit only in corners so that every arrow
runs through an empty cell and never covers a shape or a label: along an edge of the grid, or (at most one)
across the centre. Questions ask where an arrow goes, what a label is, which shape carries a label, how many
arrows come in: reading a label or following an arrow needs the detail of a few patches, which pruning can drop.

Capability questions are MMStar's 18 sub-categories (l2) asked about scenes (and diagrams for the diagram
l2s): the official names, with the scene world's question forms mapped onto them (`CAPABILITIES`). Every
multiple-choice question here has 4 options and takes the position of its answer from the caller, so that
a writer can balance the answer letters.

Held out by content: a diagram belongs to the split of its scene (background and shapes, `scene_split`); labels
and arrows are drawn on top. Training diagrams come from "train" scenes, evaluation diagrams from "eval" scenes,
so no evaluation image can occur in training data.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

from PIL import Image, ImageDraw

from llava.data.questions import (LETTERS, OPPOSITE, QA, CORNERS, relation_pair, absent_objects, ask_color,
                                  ask_count, ask_position, ask_relation, ask_shape, reference, relations)
from llava.data.scenes import (BACKGROUNDS, CELL, COLORS, KINDS, POSITIONS, WORD_INK, WORDS, Scene, Shape, Word,
                               scene_split)
from llava.data.layouts.common import draw_new
from llava.data.shapes import draw_word, render  # the scene renderer's own word drawing: same font, size and ink

N_OPTIONS = 4

# ----------------------------------------------------------------------------------------------- diagrams

NODE_CELLS = (0, 2, 6, 8)  # the corners: any two are joined through an empty cell (an edge or the centre)
SHAPE_Y = 40  # a node's shape centre, px below its cell's top; its label's centre is LABEL_Y below
LABEL_Y = 88  # the label spans about 72..106 (the fitted font's box), the shape at most 12..68
SHAPE_EXTENT = (40, 52)  # "small" shapes, as scenes draw them
JITTER = 4  # px of horizontal play of a shape in its cell
ARROW_WIDTH = 3
ARROW_HEAD = (14, 7)  # length, half width (px)
MARGIN = 10  # px an arrow along a row reaches into the cells of its two nodes


@dataclass(frozen=True)
class Node:
    shape: Shape
    label: str  # one of WORDS, upper case as drawn

    @property
    def name(self) -> str:
        """"red circle": unique within a diagram (its nodes have different colours)."""
        return f"{self.shape.color} {self.shape.kind}"

    @property
    def word(self) -> Word:
        cx = (self.shape.cell % 3) * CELL + CELL // 2
        return Word(self.label, self.shape.cell, cx, (self.shape.cell // 3) * CELL + LABEL_Y)


@dataclass(frozen=True)
class Diagram:
    background: str
    nodes: tuple[Node, ...]  # by cell
    arrows: tuple[tuple[int, int], ...]  # (source cell, target cell)

    @property
    def scene(self) -> Scene:
        """The shapes alone, as a scene: what decides the split, and the image's ground truth for shapes."""
        return Scene(self.background, tuple(n.shape for n in self.nodes))

    def signature(self) -> str:
        labels = "|".join(f"{n.label}@{n.shape.cell}" for n in self.nodes)
        arrows = "|".join(f"{a}>{b}" for a, b in self.arrows)
        return f"{self.scene.signature()}|{labels}|{arrows}"

    def node(self, cell: int) -> Node:
        return next(n for n in self.nodes if n.shape.cell == cell)

    def targets(self, cell: int) -> list[int]:
        return [b for a, b in self.arrows if a == cell]

    def sources(self, cell: int) -> list[int]:
        return [a for a, b in self.arrows if b == cell]


def diagram_split(diagram: Diagram) -> str:
    return scene_split(diagram.scene)


def _is_diagonal(a: int, b: int) -> bool:
    return a % 3 != b % 3 and a // 3 != b // 3


def _draw_diagram(rng: random.Random, n_nodes: int | None) -> Diagram:
    n = n_nodes if n_nodes is not None else rng.randint(2, 4)
    cells = sorted(rng.sample(NODE_CELLS, n))
    colors, labels = rng.sample(tuple(COLORS), n), rng.sample(WORDS, n)
    nodes = []
    for cell, color, label in zip(cells, colors, labels):
        extent = rng.randint(*SHAPE_EXTENT)
        cx = (cell % 3) * CELL + CELL // 2 + rng.randint(-JITTER, JITTER)
        cy = (cell // 3) * CELL + SHAPE_Y
        nodes.append(Node(Shape(rng.choice(KINDS), color, "small", cell, cx, cy, extent), label))
    pairs = [(a, b) for i, a in enumerate(cells) for b in cells[i + 1:]]
    rng.shuffle(pairs)
    arrows, diagonal = [], False
    for a, b in pairs[: rng.randint(1, min(3, len(pairs)))]:
        if _is_diagonal(a, b):
            if diagonal:  # two diagonals would cross in the centre
                continue
            diagonal = True
        arrows.append((a, b) if rng.random() < 0.5 else (b, a))
    return Diagram(rng.choice(tuple(BACKGROUNDS)), tuple(nodes), tuple(arrows))


def sample_diagram(rng: random.Random, n_nodes: int | None = None, split: str | None = "train",
                   max_tries: int = 1000) -> Diagram:
    """A diagram of `n_nodes` (2-4, default random) nodes in the given split ("train", "eval" or None for any)."""
    if n_nodes is not None and not 2 <= n_nodes <= len(NODE_CELLS):
        raise ValueError(f"n_nodes must be in 2..{len(NODE_CELLS)}, got {n_nodes}")
    if split not in (None, "train", "eval"):
        raise ValueError(f"split must be 'train', 'eval' or None, got {split!r}")
    for _ in range(max_tries):
        diagram = _draw_diagram(rng, n_nodes)
        if split is None or diagram_split(diagram) == split:
            return diagram
    raise RuntimeError(f"no {split} diagram found in {max_tries} draws")


def draw_diagram(rng: random.Random, make: Callable[[Diagram], object], seen: set[str], split: str = "eval",
                 **kwargs) -> tuple[Diagram, object]:
    """Draw diagrams until `make(diagram)` returns something (not None) for one not in `seen` (which it joins)."""
    return draw_new(lambda: sample_diagram(rng, split=split, **kwargs), make, seen, "diagram")


def arrow_ends(source: int, target: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where the arrow from the node in cell `source` to the one in `target` starts and ends (its tip)."""
    (rs, cs), (rt, ct) = divmod(source, 3), divmod(target, 3)

    def inner(index: int) -> int:  # a corner cell's side that faces the centre, just past it
        return CELL + 4 if index == 0 else 2 * CELL - 4

    if rs == rt:  # along a row at shape height, from inside one cell's facing side to just outside the other's
        y = rs * CELL + SHAPE_Y
        left, right = CELL - MARGIN, 2 * CELL + MARGIN
        return ((left, y), (right, y)) if ct > cs else ((right, y), (left, y))
    if cs == ct:  # along a column: between the upper node's label and the lower node's shape
        x = cs * CELL + CELL // 2
        upper, lower = CELL - 2, 2 * CELL + 4
        return ((x, upper), (x, lower)) if rt > rs else ((x, lower), (x, upper))
    return (inner(cs), inner(rs)), (inner(ct), inner(rt))  # across the centre, corner to corner


def _draw_arrow(draw: ImageDraw.ImageDraw, start: tuple[int, int], tip: tuple[int, int]) -> None:
    (x0, y0), (x1, y1) = start, tip
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    head, half = ARROW_HEAD
    bx, by = x1 - head * ux, y1 - head * uy
    draw.line((x0, y0, bx, by), fill=WORD_INK, width=ARROW_WIDTH)
    draw.polygon([(x1, y1), (bx - half * uy, by + half * ux), (bx + half * uy, by - half * ux)], fill=WORD_INK)


def render_diagram(diagram: Diagram) -> Image.Image:
    """The diagram as a 336x336 RGB image: the scene's background and shapes, then labels and arrows."""
    image = render(diagram.scene)
    draw = ImageDraw.Draw(image)
    for node in diagram.nodes:
        draw_word(draw, node.word)
    for source, target in diagram.arrows:
        _draw_arrow(draw, *arrow_ends(source, target))
    return image


# ------------------------------------------------------------------------------- multiple-choice helpers


def four_options(kind: str, question: str, answer: str, pool: list[str], rng: random.Random, position: int,
           preferred: list[str] = (), detail: str = "") -> QA:
    """A 4-option question whose answer is at `position` (0-3). Distractors come first from `preferred`
    (things the image shows, so that a guess from the question alone fails), then from `pool`."""
    first = [p for p in dict.fromkeys(preferred) if p != answer]
    rest = [p for p in dict.fromkeys(pool) if p != answer and p not in first]
    rng.shuffle(first)
    rng.shuffle(rest)
    distractors = (first + rest)[: N_OPTIONS - 1]
    if len(distractors) < N_OPTIONS - 1:
        raise ValueError(f"too few distractors for {question!r}: {distractors}")
    options = distractors[:position] + [answer] + distractors[position:]
    return QA(kind, question, LETTERS[position], tuple(options), detail=detail)


def _names(shapes) -> list[str]:
    return [f"{s.color} {s.kind}" for s in shapes]


ALL_NAMES = [f"{c} {k}" for c in COLORS for k in KINDS]
LOWER_WORDS = [w.lower() for w in WORDS]

# ------------------------------------------------------------------------------------ diagram questions
# Each takes (diagram, rng) and returns (question, answer text, pool, preferred distractors) or None.


def _single_target(diagram: Diagram, rng: random.Random) -> tuple[Node, Node] | None:
    sources = [n for n in diagram.nodes if len(diagram.targets(n.shape.cell)) == 1]
    if not sources:
        return None
    source = rng.choice(sources)
    return source, diagram.node(diagram.targets(source.shape.cell)[0])


def ask_arrow_target(diagram: Diagram, rng: random.Random):
    pair = _single_target(diagram, rng)
    if pair is None:
        return None
    source, target = pair
    others = [n.name for n in diagram.nodes if n is not target]
    return f"Which shape does the arrow from the {source.name} point to?", target.name, ALL_NAMES, others


def ask_label_of(diagram: Diagram, rng: random.Random):
    node = rng.choice(diagram.nodes)
    kinds = Counter(n.shape.kind for n in diagram.nodes)
    ref = node.shape.kind if kinds[node.shape.kind] == 1 else node.name
    others = [n.label.lower() for n in diagram.nodes if n is not node]
    return f"What is the label of the {ref}?", node.label.lower(), LOWER_WORDS, others


def ask_label_target(diagram: Diagram, rng: random.Random):
    pair = _single_target(diagram, rng)
    if pair is None:
        return None
    source, target = pair
    others = [n.label.lower() for n in diagram.nodes if n is not target]
    return f"What does the arrow from {source.label.lower()} point to?", target.label.lower(), LOWER_WORDS, others


def ask_shape_of_label(diagram: Diagram, rng: random.Random):
    node = rng.choice(diagram.nodes)
    others = [n.name for n in diagram.nodes if n is not node]
    return f"Which shape is labelled {node.label.lower()}?", node.name, ALL_NAMES, others


def ask_arrows_in(diagram: Diagram, rng: random.Random):
    node = rng.choice(diagram.nodes)
    return (f"How many arrows point to {node.label.lower()}?", str(len(diagram.sources(node.shape.cell))),
            ["0", "1", "2", "3"], [])


DIAGRAM_QUESTIONS: dict[str, Callable] = {
    "arrow_target": ask_arrow_target,
    "label_of": ask_label_of,
    "label_target": ask_label_target,
    "shape_of_label": ask_shape_of_label,
    "arrows_in": ask_arrows_in,
}


def ask_diagram(diagram: Diagram, rng: random.Random, form: str, position: int) -> QA | None:
    """One AI2D-style 4-option question of `form` (a key of DIAGRAM_QUESTIONS), answer at `position`."""
    made = DIAGRAM_QUESTIONS[form](diagram, rng)
    if made is None:
        return None
    question, answer, pool, preferred = made
    return four_options("diagram", question, answer, pool, rng, position, preferred, detail=form)


# ---------------------------------------------------------------------------------- capability questions
# MMStar's sub-categories over scenes. Each form takes (scene, rng) and returns (question, answer text,
# pool, preferred distractors) or None when the scene cannot carry it.


def _from_qa(qa: QA | None, pool: list[str], preferred: list[str] = ()):
    return (qa.question, qa.answer, pool, list(preferred)) if qa is not None else None


def _background(scene: Scene, rng: random.Random):
    return "What color is the background?", scene.background, list(BACKGROUNDS), []


def _present_object(scene: Scene, rng: random.Random):
    shape = rng.choice(scene.shapes)
    absent = [f"{c} {k}" for c, k in absent_objects(scene, confusable=True)]
    return "Which of these shapes is in the image?", f"{shape.color} {shape.kind}", \
        [f"{c} {k}" for c, k in absent_objects(scene)], absent


def _count(scene: Scene, rng: random.Random):
    qa = ask_count(scene, rng)
    return _from_qa(qa, [str(k) for k in range(1 if qa.detail == "all" else 0, 5)])


def _word(scene: Scene, rng: random.Random):
    if scene.word is None:
        return None
    return "What word is written in the image?", scene.word.text.lower(), LOWER_WORDS, []


def _attribute_of_neighbour(scene: Scene, rng: random.Random):
    """"What color is the shape <relation> the <reference>?" where exactly one shape stands so."""
    for anchor in rng.sample(scene.shapes, len(scene.shapes)):
        ref = reference(scene, anchor, rng, without="position")
        if ref is None:
            continue
        for relation in rng.sample(sorted(OPPOSITE), len(OPPOSITE)):
            fits = [s for s in scene.shapes if s is not anchor and relation in relations(s, anchor)]
            if len(fits) == 1:
                others = [s.color for s in scene.shapes if s is not fits[0]]
                return f"What color is the shape {relation} the {ref}?", fits[0].color, list(COLORS), others
    return None


def _next_in_reading_order(scene: Scene, rng: random.Random):
    shapes = scene.shapes  # sorted by cell: reading order
    names = Counter(_names(shapes))
    candidates = [i for i in range(len(shapes) - 1) if names[_names([shapes[i]])[0]] == 1]
    if not candidates:
        return None
    i = rng.choice(candidates)
    answer = _names([shapes[i + 1]])[0]
    return (f"Reading from left to right and top to bottom, which shape comes after the {_names([shapes[i]])[0]}?",
            answer, ALL_NAMES, _names(shapes))


def _largest(scene: Scene, rng: random.Random):
    large = [s for s in scene.shapes if s.size == "large"]
    if len(large) != 1 or len(scene.shapes) < 2:
        return None
    return "Which shape is the largest?", _names(large)[0], ALL_NAMES, _names(scene.shapes)


WORD_MEANINGS = {
    "an animal": ("CAT", "DOG", "FISH", "BIRD"), "a plant": ("TREE",), "a food": ("CAKE",),
    "something in the sky": ("SUN", "MOON"), "a thing people make": ("BOOK", "LAMP", "DOOR", "SHIP"),
}


def _word_meaning(scene: Scene, rng: random.Random):
    if scene.word is None:
        return None
    meaning = next(m for m, words in WORD_MEANINGS.items() if scene.word.text in words)
    return "What does the word in the image name?", meaning, list(WORD_MEANINGS), []


COMPASS = {"above": "north", "below": "south", "to the left of": "west", "to the right of": "east"}


def _compass(scene: Scene, rng: random.Random):
    pair = relation_pair(scene, rng, aligned=True)  # one row or one column: exactly one direction holds
    if pair is None:
        return None
    a, b, relation = pair
    return (f"On a map with north at the top, in which direction is the {a} from the {b}?", COMPASS[relation],
            list(COMPASS.values()), [])


def _color_by_corners(scene: Scene, rng: random.Random):
    kinds = Counter(s.kind for s in scene.shapes)
    unique = [s for s in scene.shapes if kinds[s.kind] == 1]
    if not unique:
        return None
    shape = rng.choice(unique)
    others = [s.color for s in scene.shapes if s is not shape]
    return f"What color is the shape with {CORNERS[shape.kind]}?", shape.color, list(COLORS), others


def _one_more(scene: Scene, rng: random.Random):
    return ("If one more shape were added, how many shapes would there be?", str(len(scene.shapes) + 1),
            [str(k) for k in range(2, 6)], [])


def _most_common_color(scene: Scene, rng: random.Random):
    counts = Counter(s.color for s in scene.shapes).most_common()
    if counts[0][1] < 2 or (len(counts) > 1 and counts[1][1] == counts[0][1]):
        return None
    return "Which color do most of the shapes have?", counts[0][0], list(COLORS), [c for c, _ in counts[1:]]


def _diagram_form(form: str) -> Callable:
    return lambda diagram, rng: DIAGRAM_QUESTIONS[form](diagram, rng)


@dataclass(frozen=True)
class Capability:
    """One MMStar sub-category: its category, what it is asked about ("scene", "word": a scene with a word,
    "diagram") and the question form."""

    category: str
    image: str
    ask: Callable


CAPABILITIES: dict[str, Capability] = {  # MMStar's l2 categories, in its order, with our stand-in forms
    "image scene and topic": Capability("coarse perception", "scene", _background),
    "image style & quality": Capability("coarse perception", "scene",
                                        lambda s, r: _from_qa(ask_color(s, r), list(COLORS))),
    "image emotion": Capability("coarse perception", "scene", _present_object),
    "object counting": Capability("fine-grained perception", "scene", _count),
    "recognition": Capability("fine-grained perception", "word", _word),
    "localization": Capability("fine-grained perception", "scene",
                               lambda s, r: _from_qa(ask_position(s, r), list(POSITIONS))),
    "single-instance reasoning": Capability("instance reasoning", "scene",
                                            lambda s, r: _from_qa(ask_shape(s, r), list(KINDS))),
    "cross-instance attribute reasoning": Capability("instance reasoning", "scene", _attribute_of_neighbour),
    "cross-instance relation reasoning": Capability(
        "instance reasoning", "scene", lambda s, r: _from_qa(ask_relation(s, r), ["left", "right", "above", "below"])),
    "code & sequence reasoning": Capability("logical reasoning", "scene", _next_in_reading_order),
    "diagram reasoning": Capability("logical reasoning", "diagram", _diagram_form("arrow_target")),
    "common reasoning": Capability("logical reasoning", "scene", _largest),
    "biology & chemistry & physics": Capability("science & technology", "word", _word_meaning),
    "electronics & energy & mechanical eng.": Capability("science & technology", "diagram", _diagram_form("arrows_in")),
    "geography & earth science & agriculture": Capability("science & technology", "scene", _compass),
    "geometry": Capability("math", "scene", _color_by_corners),
    "numeric commonsense and calculation": Capability("math", "scene", _one_more),
    "statistical reasoning": Capability("math", "scene", _most_common_color),
}


def ask_capability(source: Scene | Diagram, rng: random.Random, l2: str, position: int) -> QA | None:
    """A 4-option question of MMStar sub-category `l2` about a scene or a diagram (as CAPABILITIES[l2].image
    says), answer at `position`; `kind` is the l2 category, `detail` its category."""
    capability = CAPABILITIES[l2]
    made = capability.ask(source, rng)
    if made is None:
        return None
    question, answer, pool, preferred = made
    return four_options(l2, question, answer, pool, rng, position, preferred, detail=capability.category)


# ------------------------------------------------------------------------------------------------- corpus


def corpus() -> Iterator[str]:
    """The new question wordings and options, for a tokenizer that must cover this data."""
    names = ALL_NAMES
    for name in names:
        yield f"Which shape does the arrow from the {name} point to?"
    for kind in list(KINDS) + names:
        yield f"What is the label of the {kind}?"
    for word in LOWER_WORDS:
        yield f"What does the arrow from {word} point to?"
        yield f"Which shape is labelled {word}?"
        yield f"How many arrows point to {word}?"
    yield from ("Which of these shapes is in the image?", "Which shape is the largest?",
                "What does the word in the image name?", "Which color do most of the shapes have?",
                "If one more shape were added, how many shapes would there be?")
    for relation in OPPOSITE:
        yield f"What color is the shape {relation} the shape?"
    yield "Reading from left to right and top to bottom, which shape comes after the red circle?"
    yield "On a map with north at the top, in which direction is the circle from the square?"
    for phrase in CORNERS.values():
        yield f"What color is the shape with {phrase}?"
    yield from WORD_MEANINGS
    yield from COMPASS.values()
    yield "Options: " + ", ".join(f"{LETTERS[i]}: {names[i]}" for i in range(N_OPTIONS))
