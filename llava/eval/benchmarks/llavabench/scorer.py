r"""LLaVA-Bench (in-the-wild / COCO) review by a GPT judge, as LLaVA's `eval_gpt_review_bench.py` runs it.

    python -m llava.eval.benchmarks.llavabench.scorer \
        --question playground/data/eval/llava-bench-in-the-wild/questions.jsonl \
        --context playground/data/eval/llava-bench-in-the-wild/context.jsonl \
        --rule llava/eval/benchmarks/llavabench/rule.json \
        --answer-list playground/data/eval/llava-bench-in-the-wild/answers_gpt4.jsonl ANSWERS.jsonl \
        --output playground/data/eval/llava-bench-in-the-wild/reviews/MODEL.jsonl

For each question the judge sees the image's caption(s), the question, the reference answer (assistant 1)
and the model's answer (assistant 2), followed by the rule of the question's category
(`llava_bench_<category>` in the rule file), and replies with two scores on its first line. The judge is
LLaVA's: `gpt-4-0314` (the model LLaVA's published numbers used; `--judge-model` picks another, whose
numbers then do not compare), its system message, temperature 0.2, 1024 tokens at most. Needs the
`review` extra (`pip install -e ".[review]"`) and OPENAI_API_KEY.

Reviews are appended one per line as they arrive, and a rerun continues after the questions already
reviewed, so an interrupted run loses nothing. `llava.eval.benchmarks.llavabench.summarize` turns the file into scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable

from tqdm import tqdm

from llava.eval.core.scoring_io import ScoringInputError, fail, index_by_qid, qid, read_answers, read_json, read_jsonl

JUDGE_MODEL = "gpt-4-0314"
JUDGE_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
JUDGE_TEMPERATURE = 0.2
UNPARSED = [-1.0, -1.0]  # LLaVA's score pair for a review whose first line is not two numbers

Completer = Callable[[str], str]  # the judge: the user message in, the review text out


def caption_text(context: dict) -> str:
    """The context block: LLaVA-Bench's captions, one per line (a single caption string as it is)."""
    caption = context["caption"]
    return caption if isinstance(caption, str) else "\n".join(caption)


def review_prompt(question: str, captions: str, reference: str, answer: str, rule: dict) -> str:
    """The judge's user message, laid out as LLaVA's: context, question, both answers, then the rule."""
    role = rule["role"]
    return (f"[Context]\n{captions}\n\n"
            f"[Question]\n{question}\n\n"
            f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n"
            f"[System]\n{rule['prompt']}\n\n")


def parse_score(review: str) -> list[float]:
    """LLaVA's rule: the first line, commas read as spaces, must split on single spaces into exactly two
    numbers (reference's, model's); anything else is UNPARSED and still counts in the means."""
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return list(UNPARSED)
    try:
        return [float(parts[0]), float(parts[1])]
    except ValueError:
        return list(UNPARSED)


def openai_judge(model: str = JUDGE_MODEL, max_tokens: int = 1024, max_attempts: int = 8) -> Completer:
    """A Completer calling OpenAI's chat API; rate limits and transient errors are retried with backoff."""
    try:
        import openai
    except ImportError:
        raise SystemExit("the GPT review needs the openai package: pip install -e \".[review]\"") from None
    client = openai.OpenAI()

    transient = (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError)

    def ask(content: str) -> str:
        response = client.chat.completions.create(
            model=model, temperature=JUDGE_TEMPERATURE, max_tokens=max_tokens,
            messages=[{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}])
        return response.choices[0].message.content

    def complete(content: str) -> str:
        for attempt in range(max_attempts - 1):
            try:
                return ask(content)
            except transient as exc:
                delay = min(60.0, 2.0 ** attempt)
                tqdm.write(f"judge: {type(exc).__name__}; retrying in {delay:.0f} s")
                time.sleep(delay)
        return ask(content)  # the last attempt's error reaches the caller

    return complete


def _paired_answers(questions: list[dict], path: str) -> dict[str, dict]:
    """The answers of `path` by question id; every question must have one (the file is named if not)."""
    answers, _ = index_by_qid(read_answers(path))
    missing = [q["question_id"] for q in questions if qid(q["question_id"]) not in answers]
    if missing:
        raise ScoringInputError(f"{path}: no answer for question_id {', '.join(map(str, missing[:5]))}"
                                f"{' ...' if len(missing) > 5 else ''} ({len(missing)} of {len(questions)})")
    return answers


def review_all(question_file: str, context_file: str, rule_file: str, reference_file: str, answer_file: str,
               output: str, judge: Completer) -> int:
    """Review every question not yet in `output`, appending each review as it arrives; returns how many
    were reviewed now."""
    questions = read_jsonl(question_file)
    for i, q in enumerate(questions, 1):
        missing = [k for k in ("question_id", "image", "text", "category") if k not in q]
        if missing:
            raise ScoringInputError(f"{question_file}: question #{i} lacks {', '.join(missing)}")
    contexts = {c["image"]: c for c in read_jsonl(context_file)}
    rules = read_json(rule_file)
    references = _paired_answers(questions, reference_file)
    answers = _paired_answers(questions, answer_file)
    done = {qid(r["question_id"]) for r in read_jsonl(output)} if os.path.isfile(output) else set()
    todo = [q for q in questions if qid(q["question_id"]) not in done]
    for q in todo:
        if q["image"] not in contexts:
            raise ScoringInputError(f"{context_file}: no context for image {q['image']}")
        if f"llava_bench_{q['category']}" not in rules:
            raise ScoringInputError(f"{rule_file}: no rule for category llava_bench_{q['category']}")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "a", encoding="utf-8") as out:
        for q in tqdm(todo, desc="GPT review", unit="question"):
            key = qid(q["question_id"])
            reference, answer = references[key], answers[key]
            category = f"llava_bench_{q['category']}"
            content = review_prompt(q["text"], caption_text(contexts[q["image"]]), reference["text"],
                                    answer["text"], rules[category])
            review = judge(content)
            out.write(json.dumps({
                "question_id": q["question_id"],
                "answer1_id": reference.get("answer_id", reference["question_id"]),
                "answer2_id": answer.get("answer_id", answer["question_id"]),
                "category": category, "content": review, "tuple": parse_score(review)}, ensure_ascii=False) + "\n")
            out.flush()
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--question", required=True, help="questions.jsonl")
    parser.add_argument("-c", "--context", required=True, help="context.jsonl (captions per image)")
    parser.add_argument("-r", "--rule", required=True, help="rule.json (the judge's instruction per category)")
    parser.add_argument("-a", "--answer-list", nargs=2, required=True, metavar=("REFERENCE", "ANSWERS"),
                        help="the reference answers (answers_gpt4.jsonl), then the model's")
    parser.add_argument("-o", "--output", required=True, help="reviews JSONL (appended to; resumed)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="longest review the judge may write")
    parser.add_argument("--judge-model", default=JUDGE_MODEL,
                        help=f"OpenAI chat model (default {JUDGE_MODEL}, LLaVA's; another one's scores do "
                             "not compare with published numbers)")
    args = parser.parse_args(argv)
    if not os.environ.get("OPENAI_API_KEY"):
        return fail("OPENAI_API_KEY is not set: the review calls OpenAI's API")
    try:
        reviewed = review_all(args.question, args.context, args.rule, args.answer_list[0], args.answer_list[1],
                              args.output, openai_judge(args.judge_model, args.max_tokens))
    except ScoringInputError as exc:
        return fail(str(exc))
    print(f"LLaVA-Bench review: {reviewed} questions reviewed by {args.judge_model}  [{args.output}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
