"""Text from scenes: captions and question/answer pairs from fixed templates over a fixed vocabulary.

Every question is built by one `ask_*` function from a scene and a `random.Random`; it returns a `QA`, or
None when the scene cannot support that question (e.g. no word to read). Answers are short (one word, a
digit, a position phrase, yes/no or an option letter), as LLaVA-1.5's short-answer prompts expect. The
benchmark writers call the same functions, so evaluation questions use only wordings seen in training.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Iterator

from llava.eval.core.prompt_texts import (  # noqa: F401 (re-exported for the writers)
    OPTION_LETTERS,
    OPTION_PROMPT,
    OPTION_PROMPT_CN,
    QBENCH_CHOOSE,
    SHORT_ANSWER_PROMPT,
    qbench_prompt,
)
from llava.data.scenes import BACKGROUNDS, COLORS, KINDS, POSITIONS, SIZES, WORDS, Scene, Shape

OCR_PREFIX = "Reference OCR token: "
LETTERS = OPTION_LETTERS

# "at the top left" etc.: how captions and references place an object in the 3x3 grid.
PLACES = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}
OPPOSITE = {  # the grid relations "A <relation> B" and their opposites

    "to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above",
}
EXIST_ENDINGS = ("", " in the image", " in this image")  # POPE asks "in the image", MME "in this image"
HINTS = (
    "The image shows shapes on a plain background.",
    "Look at the shapes in the image.",
    "Left and right are as seen by the viewer.",
    "Count only the shapes, not the letters of a word.",
)
CAPTION_INSTRUCTIONS = (  # short stage-1 instructions, in the spirit of LLaVA-Pretrain's
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Write a terse but informative summary of the picture.",
    "Render a clear and concise summary of the photo.",
    "Give a short and clear explanation of the subsequent image.",
)
ANIMALS = ("CAT", "DOG", "FISH", "BIRD")
WORD_QUESTION = "What word is written in the image?"


@dataclass(frozen=True)
class QA:
    """One question. `answer` is what the model should say: for multiple choice, the option letter."""

    kind: str  # question type: a key of DEFAULT_TYPES, "knowledge"; multiple choice keeps its base's type
    question: str  # bare question, without answer-format instructions
    answer: str
    options: tuple[str, ...] = ()  # multiple choice only, in display order
    ocr: tuple[str, ...] = ()  # "Reference OCR token" words (TextVQA style), if any
    hint: str = ""  # context sentence (ScienceQA / MMBench style), if any
    detail: str = ""  # sub-type, e.g. "relation" for a verify question; used by benchmark metadata
    form: str = ""  # multiple choice: "" LLaVA's instruction, else a key of MC_FORMS (another benchmark's)

    @property
    def answer_text(self) -> str:
        """For multiple choice the option's text, else the answer itself."""
        return self.options[LETTERS.index(self.answer)] if self.options else self.answer

    def options_block(self) -> str:
        return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(self.options))


def question_block(qa: QA, context_style: str = "sqa") -> str:
    """The question without the answer-format instruction.

    Multiple choice: optional context, the question, then one "A. option" line per option; context_style
    "sqa" writes the hint as "Context: <hint>" (llava_test_CQM-A.json), "mmbench" writes it bare (as
    model_vqa_mmbench does). Short answer with OCR tokens: "<q>\nReference OCR token: A, B" (TextVQA).
    """
    if qa.options:
        head = ""
        if qa.hint:
            head = f"Context: {qa.hint}\n" if context_style == "sqa" else f"{qa.hint}\n"
        return f"{head}{qa.question}\n{qa.options_block()}"
    if qa.ocr:
        return f"{qa.question}\n{OCR_PREFIX}{', '.join(qa.ocr)}"
    return qa.question


MC_FORMS = {"mmbench_cn": None, "qbench": "en", "qbench_zh": "zh"}  # form -> Q-Bench language (None: not Q-Bench)


def prompt(qa: QA, context_style: str = "sqa") -> str:
    """The user turn as LLaVA-1.5's eval prompts write it (without the `<image>` line): the question block,
    then SHORT_ANSWER_PROMPT, or OPTION_PROMPT for multiple choice; multiple choice in another benchmark's
    form (`qa.form`) as that benchmark's worker writes it."""
    if qa.form:
        if MC_FORMS[qa.form] is not None:
            return qbench_prompt(qa.question, qa.options, MC_FORMS[qa.form])
        return f"{question_block(qa, context_style)}\n{OPTION_PROMPT_CN}"
    suffix = OPTION_PROMPT if qa.options else SHORT_ANSWER_PROMPT
    return f"{question_block(qa, context_style)}\n{suffix}"


# ---------------------------------------------------------------------------------------------- references


def _place(shape: Shape) -> str:
    return PLACES[shape.position]


def _descriptions(shape: Shape, without: str) -> list[tuple[str | None, str | None, int | None]]:
    """(kind, color, cell) filters that `shape` satisfies, None meaning "not mentioned", leaving out every
    filter that mentions the attribute `without` ("kind", "color" or "position")."""
    k, c, p = shape.kind, shape.color, shape.cell
    candidates = [(k, None, None), (k, c, None), (None, c, None), (None, None, p), (k, None, p)]
    slot = {"kind": 0, "color": 1, "position": 2}[without]
    return [d for d in candidates if d[slot] is None]


def _phrase(d: tuple[str | None, str | None, int | None]) -> str:
    kind, color, cell = d
    text = f"{color} {kind or 'shape'}" if color else kind or "shape"
    return f"{text} {PLACES[POSITIONS[cell]]}" if cell is not None else text


def _fits(d: tuple[str | None, str | None, int | None], shape: Shape) -> bool:
    return all(v is None or v == attr for v, attr in zip(d, (shape.kind, shape.color, shape.cell)))


def reference(scene: Scene, shape: Shape, rng: random.Random, without: str) -> str | None:
    """A noun phrase that picks out `shape` alone in `scene` without naming `without`, or None.

    e.g. "circle", "red circle", "red shape", "shape at the top left", "circle at the top left".
    """
    unique = [d for d in _descriptions(shape, without) if sum(_fits(d, s) for s in scene.shapes) == 1]
    return _phrase(rng.choice(unique)) if unique else None


# ------------------------------------------------------------------------------------------------ captions


def describe(shape: Shape) -> str:
    return f"a {shape.size} {shape.color} {shape.kind} {_place(shape)}"


def caption(scene: Scene, rng: random.Random | None = None) -> str:
    """One lower-case sentence listing every object in reading order, then the background.

    e.g. "a small red circle at the top left and a large blue square on the right, on a white background."
    `rng` is accepted for API symmetry; the caption is a function of the scene alone (deterministic and
    complete, which is what stage-1 alignment needs).
    """
    parts = [describe(s) for s in scene.shapes]
    if scene.word is not None:
        parts.append(f"the word {scene.word.text.lower()} {PLACES[scene.word.position]}")
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listing}, on a {scene.background} background."


# ---------------------------------------------------------------------------------------------- questions


def _yes_no(want: bool | None, rng: random.Random) -> bool:
    return rng.random() < 0.5 if want is None else want


def ask_color(scene: Scene, rng: random.Random) -> QA | None:
    shape = rng.choice(scene.shapes)
    ref = reference(scene, shape, rng, without="color")
    return QA("color", f"What color is the {ref}?", shape.color) if ref else None


def ask_shape(scene: Scene, rng: random.Random) -> QA | None:
    shape = rng.choice(scene.shapes)
    if len(scene.with_color(shape.color)) == 1 and rng.random() < 0.5:
        return QA("shape", f"What shape is {shape.color}?", shape.kind)
    return QA("shape", f"What shape is {_place(shape)}?", shape.kind)


def ask_count(scene: Scene, rng: random.Random) -> QA | None:
    form = rng.choice(("all", "kind", "color"))
    if form == "kind":
        kind = rng.choice([s.kind for s in scene.shapes] + list(KINDS))  # present kinds are more likely
        return QA("count", f"How many {kind}s are there?", str(len(scene.with_kind(kind))), detail="kind")
    if form == "color":
        color = rng.choice([s.color for s in scene.shapes] + list(COLORS))
        return QA("count", f"How many {color} shapes are there?", str(len(scene.with_color(color))), detail="color")
    return QA("count", "How many shapes are there?", str(len(scene.shapes)), detail="all")


def absent_objects(scene: Scene, confusable: bool | None = None) -> list[tuple[str, str]]:
    """(color, kind) pairs not in the scene; confusable=True: sharing a colour or a kind with a present shape."""
    out = []
    for color, kind in itertools.product(COLORS, KINDS):
        if scene.has(color, kind):
            continue
        shares = any(s.color == color or s.kind == kind for s in scene.shapes)
        if confusable is None or shares == confusable:
            out.append((color, kind))
    return out


def ask_exist(
    scene: Scene, rng: random.Random, want: bool | None = None, ending: str | None = None
) -> QA | None:
    """"Is there a <color> <kind>[ in the image]?" Balanced: yes and no are equally likely when want=None.

    Negatives are confusable (share a colour or a kind with a present shape) half of the time.
    """
    ending = rng.choice(EXIST_ENDINGS) if ending is None else ending
    if _yes_no(want, rng):
        shape = rng.choice(scene.shapes)
        obj = (shape.color, shape.kind)
    else:
        obj = rng.choice(absent_objects(scene, confusable=rng.random() < 0.5) or absent_objects(scene))
    answer = "yes" if scene.has(*obj) else "no"
    return QA("exist", f"Is there a {obj[0]} {obj[1]}{ending}?", answer)


def ask_position(scene: Scene, rng: random.Random) -> QA | None:
    shape = rng.choice(scene.shapes)
    ref = reference(scene, shape, rng, without="position")
    return QA("position", f"Where is the {ref}?", shape.position) if ref else None


def ocr_tokens(scene: Scene, rng: random.Random, distractors: int | None = None) -> tuple[str, ...]:
    """A noisy OCR reading, as TextVQA's Rosetta tokens are: the true word plus 0-2 spurious words, shuffled.

    The spurious words keep the question visual: with k tokens a text-only model is right 1/k of the time.
    """
    assert scene.word is not None
    k = rng.randint(0, 2) if distractors is None else distractors
    tokens = [scene.word.text] + rng.sample([w for w in WORDS if w != scene.word.text], k)
    rng.shuffle(tokens)
    return tuple(tokens)


def ask_word(scene: Scene, rng: random.Random, with_ocr: bool | None = None) -> QA | None:
    if scene.word is None:
        return None
    ocr = ocr_tokens(scene, rng) if (rng.random() < 0.5 if with_ocr is None else with_ocr) else ()
    return QA("word", WORD_QUESTION, scene.word.text.lower(), ocr=ocr)


def relations(a: Shape, b: Shape) -> list[str]:
    """Every relation r for which "a <r> b" holds in the grid (rows and columns, not pixels)."""
    (ar, ac), (br, bc) = divmod(a.cell, 3), divmod(b.cell, 3)
    holds = {"to the left of": ac < bc, "to the right of": ac > bc, "above": ar < br, "below": ar > br}
    return [r for r, ok in holds.items() if ok]


def relation_pair(scene: Scene, rng: random.Random, aligned: bool = False) -> tuple[str, str, str] | None:
    """References to two shapes that name neither position, and a relation that holds between them, or None.

    aligned=True: only shapes in the same row or the same column, so exactly one relation holds.
    """
    pairs = list(itertools.permutations(scene.shapes, 2))
    if aligned:
        pairs = [(a, b) for a, b in pairs if a.cell % 3 == b.cell % 3 or a.cell // 3 == b.cell // 3]
    rng.shuffle(pairs)
    for a, b in pairs:
        ra, rb = reference(scene, a, rng, "position"), reference(scene, b, rng, "position")
        if not (ra and rb):
            continue
        true = relations(a, b)
        if true:
            return ra, rb, rng.choice(true)
    return None


RELATION_ANSWERS = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below"}


def ask_relation(scene: Scene, rng: random.Random) -> QA | None:
    """"Where is the A relative to the B?" -> left / right / above / below, for two shapes in one row or
    one column (so that exactly one answer is true)."""
    pair = relation_pair(scene, rng, aligned=True)
    if pair is None:
        return None
    ra, rb, relation = pair
    return QA("relation", f"Where is the {ra} relative to the {rb}?", RELATION_ANSWERS[relation])


def ask_verify(
    scene: Scene, rng: random.Random, want: bool | None = None, detail: str | None = None
) -> QA | None:
    """Yes/no checks of a colour, a count, a relation or a word (MME style). Balanced when want=None."""
    yes = _yes_no(want, rng)
    detail = detail or rng.choice(("color", "count", "relation", "word"))
    answer = "yes" if yes else "no"
    if detail == "color":
        shape = rng.choice(scene.shapes)
        ref = reference(scene, shape, rng, without="color")
        if not ref:
            return None
        color = shape.color if yes else rng.choice([c for c in COLORS if c != shape.color])
        return QA("verify", f"Is the {ref} {color}?", answer, detail="color")
    if detail == "count":
        n = len(scene.shapes) if yes else rng.choice([k for k in range(1, 5) if k != len(scene.shapes)])
        q = "Is there only one shape in the image?" if n == 1 else f"Are there {n} shapes in the image?"
        return QA("verify", q, answer, detail="count")
    if detail == "relation":
        pair = relation_pair(scene, rng)
        if pair is None:
            return None
        ra, rb, relation = pair
        claim = relation if yes else OPPOSITE[relation]
        return QA("verify", f"Is the {ra} {claim} the {rb}?", answer, detail="relation")
    if detail == "word":
        if scene.word is None:
            return None
        word = scene.word.text if yes else rng.choice([w for w in WORDS if w != scene.word.text])
        return QA("verify", f'Is the word in the image "{word.lower()}"?', answer, detail="word")
    raise ValueError(f"unknown verify detail {detail!r}")


def ask_choose(scene: Scene, rng: random.Random) -> QA | None:
    """GQA-style "X or Y" questions about a colour or a kind."""
    shape = rng.choice(scene.shapes)
    if rng.random() < 0.5:
        ref = reference(scene, shape, rng, without="color")
        if not ref:
            return None
        pair = [shape.color, rng.choice([c for c in COLORS if c != shape.color])]
        rng.shuffle(pair)
        return QA("choose", f"Is the {ref} {pair[0]} or {pair[1]}?", shape.color, detail="color")
    ref = reference(scene, shape, rng, without="kind")
    if not ref:
        return None
    pair = [shape.kind, rng.choice([k for k in KINDS if k != shape.kind])]
    rng.shuffle(pair)
    return QA("choose", f"Is the {ref} a {pair[0]} or a {pair[1]}?", shape.kind, detail="kind")


def ask_background(scene: Scene, rng: random.Random) -> QA | None:
    return QA("background", "What color is the background?", scene.background)


def multiple_choice(qa: QA, rng: random.Random, n_options: int = 4, hint: str = "") -> QA:
    """Turn a short-answer question into a lettered multiple-choice one (the answer at a random letter)."""
    vocab = {
        "color": list(COLORS), "shape": list(KINDS), "position": list(POSITIONS), "background": list(BACKGROUNDS),
        "word": [w.lower() for w in WORDS], "count": [str(k) for k in range(0, 5)],
        "relation": list(RELATION_ANSWERS.values()),
    }[qa.kind]
    if qa.kind == "count" and qa.detail == "all":
        vocab = vocab[1:]  # a scene has 1..4 shapes
    others = rng.sample([v for v in vocab if v != qa.answer], n_options - 1)
    options = [qa.answer] + others
    rng.shuffle(options)
    return QA(qa.kind, qa.question, LETTERS[options.index(qa.answer)], tuple(options), hint=hint, detail=qa.detail)


def keep_options(qa: QA, n: int, rng: random.Random) -> QA:
    """The multiple-choice `qa` with only `n` of its options (the answer and the first n-1 others), reshuffled."""
    wrong = [o for o in qa.options if o != qa.answer_text]
    choices = [qa.answer_text] + wrong[: n - 1]
    rng.shuffle(choices)
    return replace(qa, answer=LETTERS[choices.index(qa.answer_text)], options=tuple(choices))


MC_BASES = ("color", "shape", "position", "count", "word", "background", "relation")


def ask_mc(scene: Scene, rng: random.Random, base: str | None = None, hint: str | None = None) -> QA | None:
    base = base or rng.choice(MC_BASES)
    qa = QUESTION_TYPES[base](scene, rng)
    if qa is None:
        return None
    qa = QA(qa.kind, qa.question, qa.answer, detail=qa.detail)  # drop OCR tokens: options replace them
    if hint is None:
        hint = rng.choice(HINTS) if rng.random() < 0.3 else ""
    return multiple_choice(qa, rng, hint=hint)


def ask_in_form(scene: Scene, rng: random.Random, form: str, base: str | None = None) -> QA | None:
    """A multiple-choice question in another benchmark's instruction form (a key of MC_FORMS); Q-Bench also
    asks yes/no questions with the candidates Yes / No (a third of them here). `base`: the one question
    type to ask (default: any of MC_BASES, and for Q-Bench's forms the yes/no third too)."""
    if MC_FORMS[form] is not None and base is None and rng.random() < 1 / 3:
        qa = ask_exist(scene, rng, ending="")
        options = ("Yes", "No")
        return QA(qa.kind, qa.question, LETTERS[options.index(qa.answer.capitalize())], options, form=form)
    qa = ask_mc(scene, rng, base=base, hint="" if MC_FORMS[form] is not None else None)
    return replace(qa, form=form) if qa is not None else None


# The default mix: what `qa_pairs` draws from when no types are given. Adding a type here would change
# every default data stream, so skill-focused variants go in FOCUSED_TYPES instead.
DEFAULT_TYPES: dict[str, Callable[..., QA | None]] = {
    "color": ask_color,
    "shape": ask_shape,
    "count": ask_count,
    "exist": ask_exist,
    "position": ask_position,
    "relation": ask_relation,
    "word": ask_word,
    "verify": ask_verify,
    "choose": ask_choose,
    "background": ask_background,
    "mc": ask_mc,
}
# One sub-type of a default type, for weighting a single skill up in a training stage: the quoted-word
# check (MME's OCR questions), the relation check (MME's position and GQA's verify questions) and multiple
# choice about colours, positions, relations and the written word (what ScienceQA and MMBench miss most).
FOCUSED_TYPES: dict[str, Callable[..., QA | None]] = {
    "verify_word": partial(ask_verify, detail="word"),
    "verify_relation": partial(ask_verify, detail="relation"),
    "mc_color": partial(ask_mc, base="color"),
    "mc_position": partial(ask_mc, base="position"),
    "mc_relation": partial(ask_mc, base="relation"),
    "mc_word": partial(ask_mc, base="word"),
    **{f"mc_{form}": partial(ask_in_form, form=form) for form in MC_FORMS},
    # MMBench-CN's letter request over one spatial question type (what the 1.6 default missed there most).
    **{f"mc_mmbench_cn_{base}": partial(ask_in_form, form="mmbench_cn", base=base)
       for base in ("color", "position", "relation")},
}
QUESTION_TYPES: dict[str, Callable[..., QA | None]] = {**DEFAULT_TYPES, **FOCUSED_TYPES}


def qa_pairs(
    scene: Scene, rng: random.Random, types: tuple[str, ...] | list[str] | None = None, k: int = 3
) -> list[QA]:
    """Up to `k` distinct questions about `scene`, each of a type drawn uniformly from `types` (default: the
    keys of DEFAULT_TYPES; any key of QUESTION_TYPES may be given, repeated to weight it)."""
    types = tuple(types or DEFAULT_TYPES)
    unknown = set(types) - set(QUESTION_TYPES)
    if unknown:
        raise ValueError(f"unknown question types {sorted(unknown)}; known: {sorted(QUESTION_TYPES)}")
    return distinct_questions(lambda: QUESTION_TYPES[rng.choice(types)](scene, rng), k)


def distinct_questions(ask: Callable[[], QA | None], k: int) -> list[QA]:
    """Up to k questions from `ask()` (None: none fits), no two with the same text; 4k tries at most."""
    out: list[QA] = []
    for _ in range(4 * k):
        if len(out) == k:
            break
        qa = ask()
        if qa is not None and all(qa.question != o.question for o in out):
            out.append(qa)
    return out


# ----------------------------------------------------------------------------------- text-only knowledge

CORNERS = {"triangle": "three corners", "square": "four corners", "circle": "no corners", "star": "five points"}


def knowledge_question(rng: random.Random) -> QA:
    """A multiple-choice question answerable without an image (ScienceQA has such questions too)."""
    form = rng.choice(("corners", "is_color", "is_shape", "animal"))
    if form == "corners":
        kind = rng.choice(KINDS)
        q, answer, pool = f"Which shape has {CORNERS[kind]}?", kind, [k for k in KINDS if k != kind]
    elif form == "is_color":
        answer = rng.choice(list(COLORS))
        q, pool = "Which of these is a color?", list(KINDS) + [w.lower() for w in WORDS]
    elif form == "is_shape":
        answer = rng.choice(KINDS)
        q, pool = "Which of these is a shape?", list(COLORS) + [w.lower() for w in WORDS]
    else:
        answer = rng.choice(ANIMALS).lower()
        q, pool = "Which word names an animal?", [w.lower() for w in WORDS if w not in ANIMALS]
    n = rng.choice((2, 3, 4)) if form != "corners" else rng.choice((3, 4))
    options = [answer] + rng.sample(pool, n - 1)
    rng.shuffle(options)
    return QA("knowledge", q, LETTERS[options.index(answer)], tuple(options), detail=form)


# ------------------------------------------------------------------------------------------------- corpus


def _questions_for_corpus() -> Iterator[str]:
    objects = list(itertools.product(COLORS, KINDS))
    for kind in KINDS:
        yield f"What color is the {kind}?"
        yield f"How many {kind}s are there?"
        for place in PLACES.values():
            yield f"What color is the {kind} {place}?"
    for place in PLACES.values():
        yield f"What color is the shape {place}?"
        yield f"What shape is {place}?"
    for color in COLORS:
        yield f"What shape is {color}?"
        yield f"How many {color} shapes are there?"
        yield f"Where is the {color} shape?"
        for kind in KINDS:
            yield f"Where is the {color} {kind}?"
    yield "How many shapes are there?"
    yield WORD_QUESTION
    yield "What color is the background?"
    for (color, kind), ending in itertools.product(objects, EXIST_ENDINGS):
        yield f"Is there a {color} {kind}{ending}?"
        yield f"Is the {kind} {color}?"
    for n in range(2, 5):
        yield f"Are there {n} shapes in the image?"
    yield "Is there only one shape in the image?"
    for (a, b), relation in itertools.product(itertools.permutations(KINDS, 2), OPPOSITE):
        yield f"Is the {a} {relation} the {b}?"
    for a, b in itertools.permutations(KINDS, 2):
        yield f"Where is the {a} relative to the {b}?"
    for kind in KINDS:
        yield f"Where is the {kind}?"
    for word in WORDS:
        yield f'Is the word in the image "{word.lower()}"?'
    for kind, (c1, c2) in itertools.product(KINDS, itertools.permutations(COLORS, 2)):
        yield f"Is the {kind} {c1} or {c2}?"
    for color, (k1, k2) in itertools.product(COLORS, itertools.permutations(KINDS, 2)):
        yield f"Is the {color} shape a {k1} or a {k2}?"
    for kind, phrase in CORNERS.items():
        yield f"Which shape has {phrase}?"
    yield from ("Which of these is a color?", "Which of these is a shape?", "Which word names an animal?")


def corpus() -> Iterator[str]:
    """Every template filled with every vocabulary item: the text a tokenizer for this data must cover."""
    yield from (SHORT_ANSWER_PROMPT, OPTION_PROMPT, "Please answer yes or no.")
    yield from HINTS
    yield from (f"Context: {h}" for h in HINTS)
    yield from CAPTION_INSTRUCTIONS
    for size, color, kind, place in itertools.product(SIZES, COLORS, KINDS, PLACES.values()):
        yield f"a {size} {color} {kind} {place}"
    for word, place in itertools.product(WORDS, PLACES.values()):
        yield f"the word {word.lower()} {place}"
    for background in BACKGROUNDS:
        yield f"on a {background} background."
    yield from _questions_for_corpus()
    answers = list(COLORS) + list(KINDS) + list(POSITIONS) + list(BACKGROUNDS) + [w.lower() for w in WORDS]
    answers += ["left", "right", "above", "below"]
    yield from answers + [str(k) for k in range(5)] + ["yes", "no", "Yes", "No"] + list(LETTERS[:4])
    for letter, option in itertools.product(LETTERS[:4], answers):
        yield f"{letter}. {option}"
    for a, b, c in itertools.permutations(WORDS, 3):
        if a < b < c:
            yield f"{OCR_PREFIX}{a}, {b}, {c}"
    yield from (f"{OCR_PREFIX}{w}" for w in WORDS)
