r"""InfographicVQA val score: ANLS, by the official rule (`llava.eval.core.anls`).

    python -m llava.eval.benchmarks.infovqa.scorer \
        --annotation-file playground/data/eval/infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json \
        --result-file playground/data/eval/infovqa/answers/MODEL.jsonl \
        [--output-file per_question.json] [--anls-threshold 0.5] [--allow-missing] [--result-json PATH]

The rule, the checks (every question answered once, no answer to an unknown question) and the result JSON are
DocVQA's (`llava.eval.benchmarks.docvqa.scorer`): `anls` 0-1 as the RRC reports it, `score` in %. With the
question types of the _withQT file the result also has the ANLS per answer type ("image span", "question span",
"multiple spans", "non span"), evidence ("table/list", "textual", "photo/pciture/visual_objects" (sic),
"figure", "map") and operation ("comparison", "arithmetic", "counting"), as the official script's --answer_types
breakdown (which labels them Image-Span, Text, Sorting, ...; here the file's own names are kept).
"""

from __future__ import annotations

import sys

from llava.eval.benchmarks.docvqa.scorer import run

INFOVQA_BREAKDOWN = {"answer_types": "answer_type", "evidence_types": "evidence",
                     "operation_types": "operation/reasoning"}


def main(argv=None) -> int:
    return run(argv, "infovqa", "InfographicVQA", __doc__, INFOVQA_BREAKDOWN)


if __name__ == "__main__":
    sys.exit(main())
