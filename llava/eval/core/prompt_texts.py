"""The instruction texts the benchmarks' official prompts end with, as LLaVA's eval scripts write them.

They live with the eval code, not the data generator: the generator (llava.data.questions) imports them so
that the training questions of the tiny models ask as the benchmarks do, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
OPTION_PROMPT = "Answer with the option's letter from the given choices directly."
# The other multiple-choice instruction forms the eval workers write: MMBench-CN's letter request, and
# Q-Bench's "choose" line between the question and its candidates, in English and Chinese (LLaVA's
# model_vqa_qbench.py text, whose Chinese form follows the question after a stray backslash, no line break).
OPTION_PROMPT_CN = "请直接回答选项字母。"
QBENCH_CHOOSE = {"en": "\nChoose between one of the options as follows:\n", "zh": "\\在下列选项中选择一个:\n"}
OPTION_LETTERS = "ABCDE"


def qbench_prompt(question: str, candidates: Sequence[str], lang: str = "en") -> str:
    """Q-Bench's user turn: the question, the "choose" line, one "A. candidate" line per candidate."""
    return question + QBENCH_CHOOSE[lang] + "".join(f"{OPTION_LETTERS[i]}. {c}\n" for i, c in enumerate(candidates))
