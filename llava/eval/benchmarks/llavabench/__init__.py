"""LLaVA-Bench (in the wild): open questions reviewed by GPT-4 against GPT-4's own answers, as LLaVA's
eval_gpt_review_bench + summarize_gpt_review do (needs OPENAI_API_KEY, network and `pip install -e ".[review]"`;
without the key the script stops after the answers)."""

from llava.eval.benchmarks import Answer, Benchmark, Context, MakeDir, Run, Say

RULE = "llava/eval/benchmarks/llavabench/rule.json"  # the review prompts, as LLaVA's llava/eval/table/rule.json


def plan(c: Context) -> list:
    d = c.path("llava-bench-in-the-wild")
    answers = f"{d}/answers/{c.name}.jsonl"
    steps = [Answer("llava.eval.workers.model_vqa", answers,
                    ("--question-file", f"{d}/questions.jsonl", "--image-folder", f"{d}/images"))]
    if not c.env.get("OPENAI_API_KEY"):
        return steps + [Say(f"OPENAI_API_KEY is unset: skipping the GPT-4 review; answers are in {answers}")]
    return steps + [
        MakeDir(f"{d}/reviews"),
        Run("llava.eval.benchmarks.llavabench.scorer",
            ("--question", f"{d}/questions.jsonl", "--context", f"{d}/context.jsonl", "--rule", RULE,
             "--answer-list", f"{d}/answers_gpt4.jsonl", answers, "--output", f"{d}/reviews/{c.name}.jsonl")),
        Run("llava.eval.benchmarks.llavabench.summarize", ("-f", f"{d}/reviews/{c.name}.jsonl")),
    ]


BENCHMARKS = (
    Benchmark(
        name="llavabench", title="LLaVA-Bench (in the wild)", metric="GPT-4 relative score",
        folder="llava-bench-in-the-wild",
        files=("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl", "images/<image>"), plan=plan, score=None,
        sample="llava.eval.benchmarks.short_answer_samples:write_llavabench", lmms_task="llava_in_the_wild",
    ),
)
