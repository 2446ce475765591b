"""ANLS (Average Normalized Levenshtein Similarity), the score of DocVQA and InfographicVQA.

The rule of the official evaluation script (the RRC's, distributed at docvqa.org / rrc.cvc.uab.es ch=17 as the
"Infographics VQA Evaluation scripts"; a copy is QwenLM/Qwen-VL eval_mm/infographicsvqa_eval.py, whose header
names that source), and of lmms-eval's `anls` metric (lmms_eval/api/metrics.py), which says it comes from the
same file. For one question with gold answers a_1..a_M and prediction o:

    norm(s)  = " ".join(s.strip().lower().split())          (lower-case, strip, collapse whitespace)
    NL(a, o) = Levenshtein(norm(a), norm(o)) / max(len(a.upper()), len(o.upper()))   (0 when both are empty)
    score    = 1 - min_j NL(a_j, o), set to 0 when it is below the threshold 0.5 (`<`: exactly 0.5 stays 0.5)

and ANLS is the mean score over all questions. Note the lengths: the official script divides by the lengths of
the RAW strings (upper-cased, before stripping and collapsing whitespace), not of the normalised ones the
distance is computed on. lmms-eval does the same, so the two agree; we follow them (a " ca " answer to "cat"
scores 1 - 1/4 = 0.75, not 1 - 1/3; a blank answer "   " to "a" scores 1 - 1/3). `str.upper` can also change the
length of non-ASCII text ("ß" -> "SS"), which enters the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

THRESHOLD = 0.5


def normalize(text: str) -> str:
    """Lower-cased, stripped, with every run of whitespace (Unicode's, as `str.split` sees it) one space."""
    return " ".join(text.strip().lower().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, 1):
        current = [j]
        for i, ca in enumerate(a, 1):
            current.append(min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalized_distance(gold: str, prediction: str) -> float:
    """NL: the distance of the normalised strings over the longer RAW length (the official script's quirk)."""
    length = max(len(gold.upper()), len(prediction.upper()))
    return 0.0 if length == 0 else levenshtein(normalize(gold), normalize(prediction)) / length


def question_score(prediction: str, golds: Sequence[str], threshold: float = THRESHOLD) -> float:
    """One question's ANLS: 1 - the smallest NL over its gold answers, 0 below `threshold`."""
    if not golds:
        raise ValueError("a question needs at least one gold answer")
    score = 1.0 - min(normalized_distance(gold, prediction) for gold in golds)
    return 0.0 if score < threshold else score


def anls(pairs: Iterable[tuple[str, Sequence[str]]], threshold: float = THRESHOLD) -> float:
    """The mean question score over (prediction, gold answers) pairs; 0 for no pairs (as the official script)."""
    scores = [question_score(prediction, golds, threshold) for prediction, golds in pairs]
    return sum(scores) / len(scores) if scores else 0.0
