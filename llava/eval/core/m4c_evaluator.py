"""VQA answer normalization (EvalAI) and TextVQA soft accuracy, as in MMF's `mmf/utils/m4c_evaluators.py`.

LLaVA imports these two classes from here (`eval_textvqa`, the VQAv2 and VizWiz submission converters), so
the names and call signatures are kept: `EvalAIAnswerProcessor()(text) -> str` and
`TextVQAAccuracyEvaluator().eval_pred_list([{"pred_answer": str, "gt_answers": [str] * 10}]) -> float`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable


class EvalAIAnswerProcessor:
    """Normalizes an answer the way the EvalAI VQA servers do (and MMF's copy of their code).

    Steps, in order: lower-case, drop "," and "?", split off "'s"; strip; punctuation; periods;
    number words -> digits; drop articles; restore contractions ("dont" -> "don't").
    """

    # The official table, including its oddities (capitalized keys can never match lower-cased words;
    # "somebody'd" maps to "somebodyd"): the servers use exactly this table.
    CONTRACTIONS = {
        "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
        "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
        "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
        "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
        "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
        "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
        "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
        "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
        "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
        "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
        "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
        "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
        "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
        "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
        "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
        "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
        "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
        "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
        "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
        "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
        "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
        "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
        "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
        "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
        "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
        "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
        "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
        "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
        "youve": "you've",
    }
    NUMBER_MAP = {
        "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
        "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
    }
    ARTICLES = ("a", "an", "the")
    PUNCTUATIONS = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                    "?", "!")
    # A comma between two digits ("1,000"). Commas are already gone when this is tested (word_tokenize drops
    # them), so in practice it never fires; kept because the official condition reads it.
    COMMA_STRIP = re.compile(r"(?<=\d)(,)+(?=\d)")
    # A period not followed by a digit ("3.5" keeps its point). The official pattern is
    # `(?!<=\d)(\.)(?!\d)`: its first group is a lookahead for the literal "<=" (a typo for a lookbehind)
    # and can never fail in front of a ".", so this is the same set of matches.
    PERIOD_STRIP = re.compile(r"\.(?!\d)")
    # The official call is `PERIOD_STRIP.sub("", text, re.UNICODE)`: the flag lands in the `count`
    # argument, so at most re.UNICODE == 32 periods are removed. Reproduced for identical outputs.
    PERIOD_STRIP_COUNT = 32

    def __init__(self, *args, **kwargs):
        pass

    def word_tokenize(self, word: str) -> str:
        word = word.lower().replace(",", "").replace("?", "").replace("'s", " 's")
        return word.strip()

    def process_punctuation(self, in_text: str) -> str:
        out_text = in_text
        comma_between_digits = self.COMMA_STRIP.search(in_text) is not None
        for p in self.PUNCTUATIONS:
            # The official test looks at the *input* text for every mark: a mark next to a space is
            # deleted, one inside a word ("t-shirt") becomes a space.
            if p + " " in in_text or " " + p in in_text or comma_between_digits:
                out_text = out_text.replace(p, "")
            else:
                out_text = out_text.replace(p, " ")
        return self.PERIOD_STRIP.sub("", out_text, count=self.PERIOD_STRIP_COUNT)

    def process_digit_article(self, in_text: str) -> str:
        words = [self.NUMBER_MAP.get(w, w) for w in in_text.lower().split()]
        words = [w for w in words if w not in self.ARTICLES]
        return " ".join(self.CONTRACTIONS.get(w, w) for w in words)

    def __call__(self, item: str) -> str:
        item = self.word_tokenize(item)
        item = item.replace("\n", " ").replace("\t", " ").strip()
        item = self.process_punctuation(item)
        return self.process_digit_article(item)


def leave_one_out_scores(processed_gt_answers: list[str]) -> dict[str, float]:
    """VQA soft accuracy of every distinct human answer.

    For each of the n humans, drop that human and score an answer min(1, matches among the other n-1 / 3);
    the answer's accuracy is the mean over the n subsets. With 10 humans an answer given by 1 of them scores
    (9 * 1/3 + 1 * 0) / 10 = 0.3, by 2: 0.6, by 3: 0.9, by 4 or more: 1.0.
    """
    n = len(processed_gt_answers)
    counts = Counter(processed_gt_answers)
    scores = {}
    for answer, c in counts.items():
        # The c subsets that drop one of the c matching humans see c-1 matches, the other n-c see c:
        # the same sum as the official loop over the n subsets.
        total = c * min(1.0, (c - 1) / 3) + (n - c) * min(1.0, c / 3)
        scores[answer] = total / n
    return scores


class TextVQAAccuracyEvaluator:
    def __init__(self):
        self.answer_processor = EvalAIAnswerProcessor()

    def _compute_answer_scores(self, raw_answers: Iterable[str]) -> dict[str, float]:
        """Soft accuracy of every distinct processed human answer (TextVQA and VQAv2 have 10 per question)."""
        answers = [self.answer_processor(a) for a in raw_answers]
        if not answers:
            raise ValueError("a question has no ground-truth answers")
        # The official code asserts exactly 10 answers; the leave-one-out rule is well defined for any n.
        return leave_one_out_scores(answers)

    def score(self, pred_answer: str, gt_answers: Iterable[str]) -> float:
        return self._compute_answer_scores(gt_answers).get(self.answer_processor(pred_answer), 0.0)

    def eval_pred_list(self, pred_list: list[dict]) -> float:
        """Mean soft accuracy over `[{"pred_answer": str, "gt_answers": [str, ...]}, ...]` (a fraction)."""
        if not pred_list:
            raise ValueError("no predictions to score")
        scores = [self.score(entry["pred_answer"], entry["gt_answers"]) for entry in pred_list]
        return sum(scores) / len(scores)
