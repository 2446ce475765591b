"""MMBench dev (English) and MMBench-CN dev: multiple choice in 20 abilities, scored circularly (a question counts
only when every rotation of its options is answered right). The official score comes from the MMBench server (the
script writes its upload file); where the TSV has answers the converter scores locally as the server does.
MMBENCH_SPLIT selects another split (e.g. mmbench_test_en_20231003)."""

import functools

from llava.eval.benchmarks import Answer, Benchmark, Context, MakeDir, Run, Say, read_score

SERVER = "https://mmbench.opencompass.org.cn"


def plan(c: Context, folder: str, split: str, lang: str) -> list:
    split = c.env.get("MMBENCH_SPLIT", split)
    d = c.path(folder)
    return [
        Answer("llava.eval.benchmarks.mmbench.worker", f"{d}/answers/{split}/{c.name}.jsonl",
               ("--question-file", f"{d}/{split}.tsv", "--lang", lang, "--single-pred-prompt")),
        MakeDir(f"{d}/answers_upload/{split}"),
        Run("llava.eval.benchmarks.mmbench.convert",
            ("--annotation-file", f"{d}/{split}.tsv", "--result-dir", f"{d}/answers/{split}",
             "--upload-dir", f"{d}/answers_upload/{split}", "--experiment", c.name)),
        Say(f"submit {d}/answers_upload/{split}/{c.name}.xlsx to the MMBench evaluation server ({SERVER}) "
            "for the official score"),
    ]


def record(name: str, title: str, folder: str, split: str, lang: str, lmms_task: str):
    return Benchmark(
        name=name, title=title, metric="circular accuracy", folder=folder, files=(f"{split}.tsv",),
        plan=functools.partial(plan, folder=folder, split=split, lang=lang),
        score=lambda data, run: read_score(data / folder / "answers" / split / f"{run}.score.json",
                                           "circular", "accuracy"),
        sample=f"llava.eval.benchmarks.mmbench.sample:write_{name}", lmms_task=lmms_task,
    )


BENCHMARKS = (
    record("mmbench", "MMBench dev", "mmbench", "mmbench_dev_20230712", "en", "mmbench_en_dev"),
    record("mmbench_cn", "MMBench-CN dev", "mmbench_cn", "mmbench_dev_cn_20231003", "cn", "mmbench_cn_dev"),
)
