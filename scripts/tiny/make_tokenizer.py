"""Generate the tiny LLaMA-style SentencePiece model shipped as `llava/model/tiny_assets/tokenizer.model`.

Run once (the output is committed):

    python scripts/tiny/make_tokenizer.py [--out llava/model/tiny_assets/tokenizer.model] [--vocab-size 512]

The output is deterministic: the corpus is enumerated from fixed word lists and the synthetic data's templates
(no randomness), training is
single-threaded, and the corpus is passed as an iterator so no temporary file path ends up in the model's
trainer spec. The trainer settings mirror LLaMA-1/2's `tokenizer.model`: BPE, byte fallback (ids 3..258
are `<0x00>`..`<0xFF>`, so "\\n" is id 13 as in LLaMA), digits split, identity normalization, no whitespace
collapsing, a dummy prefix space, unk/bos/eos = 0/1/2 and no pad piece.
"""

from __future__ import annotations

import argparse
import io
import itertools
from pathlib import Path

import sentencepiece as spm

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "llava" / "model" / "tiny_assets" / "tokenizer.model"

COLORS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "cyan"]
SHAPES = ["circle", "square", "triangle", "rectangle", "star", "diamond", "cross", "ellipse", "hexagon", "line"]
COUNTS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
POSITIONS = [
    "on the left", "on the right", "at the top", "at the bottom", "in the center", "in the top left corner",
    "in the bottom right corner", "above the", "below the", "next to the", "between the", "inside the",
]
SIZES = ["small", "large", "big", "tiny", "medium"]
QUESTIONS = [
    "What color is the {shape}?",
    "What shape is {color}?",
    "How many {shape}s are there in the image?",
    "How many {color} shapes are there?",
    "Is there a {color} {shape} in the image?",
    "Are there any {color} objects?",
    "Where is the {color} {shape}?",
    "Which shape is {position} of the image?",
    "Is the {shape} {color}?",
    "Does the image contain a {size} {shape}?",
    "What is the largest shape in the picture?",
    "What is written in the image?",
    "Describe the image in detail.",
    "What do you see in this photo?",
]
ANSWERS = [
    "Yes", "No", "yes", "no", "Yes, there is a {color} {shape}.", "No, there is no {color} {shape}.",
    "The {shape} is {color}.", "There are {count} {shape}s.", "The {color} {shape} is {position}.",
    "It is a {size} {color} {shape}.", "{count}", "{color}", "{shape}",
    "The image shows a {size} {color} {shape} {position} on a plain white background.",
]
PROMPTS = [
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "You are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language.",
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "Please answer yes or no.",
    "Reference OCR token: STOP, EXIT, 2024, A1, 42.",
    "USER: <image> What is in the image? ASSISTANT: A red circle.</s>",
    "Human: Hello! Assistant: Hi, how can I help you today? Hello world. Thank you.",
    "A. red B. green C. blue D. yellow E. none of the above",
    "Options: (A) left (B) right (C) top (D) bottom",
    "Context: The picture is a photo of a street with a car, a dog, a person, a tree and a house.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 100 2023 3.14 50% #1 @ & * + - = / ( ) [ ] { } < > \" ' ! ? , ; :",
]


def corpus() -> list[str]:
    """Fixed, enumerated sentences: the prompts, the synthetic data's own text (every template filled with
    every vocabulary item, `llava.data.questions.corpus`), and generic question/answer templates."""
    from llava.data.questions import corpus as synthetic_corpus

    lines = list(PROMPTS) + list(synthetic_corpus())
    for i, (color, shape) in enumerate(itertools.product(COLORS, SHAPES)):
        fill = {
            "color": color,
            "shape": shape,
            "count": COUNTS[i % len(COUNTS)],
            "position": POSITIONS[i % len(POSITIONS)],
            "size": SIZES[i % len(SIZES)],
        }
        question = QUESTIONS[i % len(QUESTIONS)].format(**fill)
        answer = ANSWERS[i % len(ANSWERS)].format(**fill)
        lines.append(f"USER: {question} ASSISTANT: {answer}")
        lines.append(f"{question} {answer}")
        lines.append(f"A {fill['size']} {color} {shape} {fill['position']} of the image.")
    for question in QUESTIONS:
        lines.append(question.format(color="blue", shape="square", position="at the top", size="small"))
    lines.append(" ".join(COUNTS).capitalize() + ".")
    lines.append(" ".join(POSITIONS) + ".")
    return lines


def train(vocab_size: int = 512) -> bytes:
    """Train the BPE model on `corpus()` and return the serialized `tokenizer.model` bytes."""
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        split_by_unicode_script=True,
        split_by_whitespace=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        unk_surface=" \u2047 ",
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--vocab-size", type=int, default=512)
    args = parser.parse_args()
    data = train(args.vocab_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, vocab {args.vocab_size})")


if __name__ == "__main__":
    main()
