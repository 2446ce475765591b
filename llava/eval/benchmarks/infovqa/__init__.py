"""InfographicVQA val (RRC challenge 17 task 3): 2,801 questions on 500 infographics, answered with text spans,
numbers (counting, arithmetic) or spans of the question; the score is ANLS (0-1; here in %).

Official sources: the RRC downloads (https://rrc.cvc.uab.es/?ch=17&com=downloads): infographicsvqa_qas.zip
unpacks to infographicsvqa_qas/infographicsVQA_{train,val}_v1.0_withQT.json and infographicsVQA_test_v1.0.json
(the RRC layout: {"dataset_name", ..., "data": [...]}), infographicsvqa_images.tar.gz to infographicsvqa_images/
(<image_local_name>, e.g. 37313.jpeg). ANLS as the RRC's evaluation script computes it (`llava.eval.core.anls`),
with its breakdown by answer type, evidence and operation. lmms-eval runs the same benchmark as `infovqa_val`
(the Hub dataset lmms-lab/DocVQA, config InfographicVQA, split validation) with the prompt the worker uses.

INFOVQA_SPLIT=test answers infographicsVQA_test_v1.0.json instead (its answers are not public) and writes the
RRC submission file to upload; the test ANLS comes from the RRC server.
"""

from llava.eval.benchmarks import Benchmark, Context, answers_score
from llava.eval.benchmarks.docvqa import rrc_plan

FOLDER = "infovqa"
QUESTION_FILES = {"val": "infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json",
                  "test": "infographicsvqa_qas/infographicsVQA_test_v1.0.json"}
IMAGES = "infographicsvqa_images"


def plan(c: Context) -> list:
    return rrc_plan(c, FOLDER, c.env.get("INFOVQA_SPLIT", "val"), QUESTION_FILES, IMAGES,
                    "llava.eval.benchmarks.infovqa", "Task 3 - Infographics VQA")


BENCHMARKS = (
    Benchmark(
        name="infovqa", title="InfographicVQA val", metric="ANLS", folder=FOLDER,
        files=(QUESTION_FILES["val"], f"{IMAGES}/<image_local_name>"),
        plan=plan,
        score=answers_score(FOLDER, "score"),
        sample="llava.eval.benchmarks.infovqa.sample:write_infovqa",
        lmms_task="infovqa_val",
    ),
)
