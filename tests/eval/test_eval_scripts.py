"""scripts/eval_lib.sh and scripts/v1_5/eval/*.sh: the commands they run, splitting over (fake) GPUs, merging."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llava.eval.workers import model_vqa_loader
from llava.eval import sweep
from recording_python import fake_python
from suite_threads import subprocess_threads
from suite_timeouts import hang_timeout
from worker_helpers import DART_FLAGS, GENERATION_FLAGS, read_answers, write_textvqa_set

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "v1_5" / "eval"


# Bounds that catch a hung script (tests/suite_timeouts.py): a script with a recording fake python takes about a
# second; one that runs the real workers and scorers on a sample set took up to ~6 minutes on a busy 2-core machine.
FAKE_RUN_TIMEOUT = 300
MODEL_RUN_TIMEOUT = 1800


def run_script(name, env, *args, timeout=FAKE_RUN_TIMEOUT, scripts=None):
    clean = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "CKPT", "NAME", "DART", "EVAL_ARGS", "BATCH_SIZE")}
    return subprocess.run(["bash", str((scripts or SCRIPTS) / f"{name}.sh"), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=hang_timeout(timeout))


# -- the commands of every script (a recording fake python: fast, no model) ------------------------------

DART = ("--sparse --pruned_layer 2 --pivot_image_token 4 --pivot_text_token 4 --attn_implementation sdpa "
        "--reduction_ratio 0.778 --max_num_trunction 128")
WORKER = "--model-path /ckpt/llava-v1.5-7b --conv-mode vicuna_v1 --temperature 0 --batch-size 1 " + DART
NAME = "llava-v1.5-7b-dart-0.778-128"

# Per script: the worker call, then the scorer calls, with {D} the data root (LLaVA's layout and commands).
EXPECTED = {
    "textvqa": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/textvqa/llava_textvqa_val_v051_ocr.jsonl "
        "--image-folder {D}/textvqa/train_images --is_textvqa --answers-file {D}/textvqa/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.textvqa.scorer --annotation-file {D}/textvqa/TextVQA_0.5.1_val.json "
        "--result-file {D}/textvqa/answers/{N}.jsonl",
    ],
    "pope": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/pope/llava_pope_test.jsonl "
        "--image-folder {D}/pope/val2014 --answers-file {D}/pope/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.pope.scorer --annotation-dir {D}/pope/coco --question-file {D}/pope/llava_pope_test.jsonl "
        "--result-file {D}/pope/answers/{N}.jsonl",
    ],
    "mme": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/MME/llava_mme.jsonl "
        "--image-folder {D}/MME/MME_Benchmark_release_version --answers-file {D}/MME/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.mme.convert --data-dir {D}/MME --experiment {N}",
        "-m llava.eval.benchmarks.mme.scorer --results_dir {D}/MME/eval_tool/answers/{N}",
    ],
    "gqa": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/gqa/llava_gqa_testdev_balanced.jsonl "
        "--image-folder {D}/gqa/data/images --answers-file {D}/gqa/answers/llava_gqa_testdev_balanced/{N}/merge.jsonl",
        "-m llava.eval.benchmarks.gqa.convert --src {D}/gqa/answers/llava_gqa_testdev_balanced/{N}/merge.jsonl "
        "--dst {D}/gqa/data/predictions/{N}/testdev_balanced_predictions.json",
        "-m llava.eval.benchmarks.gqa.scorer --data-dir {D}/gqa/data --tier testdev_balanced "
        "--predictions predictions/{N}/{{tier}}_predictions.json",
    ],
    "sqa": [
        "-m llava.eval.benchmarks.scienceqa.worker {W} --question-file {D}/scienceqa/llava_test_CQM-A.json "
        "--image-folder {D}/scienceqa/images/test --single-pred-prompt --answers-file {D}/scienceqa/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.scienceqa.scorer --base-dir {D}/scienceqa --result-file {D}/scienceqa/answers/{N}.jsonl "
        "--output-file {D}/scienceqa/answers/{N}_output.jsonl --output-result {D}/scienceqa/answers/{N}_result.json",
    ],
    "mmbench": [
        "-m llava.eval.benchmarks.mmbench.worker {W} --question-file {D}/mmbench/mmbench_dev_20230712.tsv --lang en "
        "--single-pred-prompt --answers-file {D}/mmbench/answers/mmbench_dev_20230712/{N}.jsonl",
        "-m llava.eval.benchmarks.mmbench.convert --annotation-file {D}/mmbench/mmbench_dev_20230712.tsv "
        "--result-dir {D}/mmbench/answers/mmbench_dev_20230712 --upload-dir {D}/mmbench/answers_upload/mmbench_dev_20230712 "
        "--experiment {N}",
    ],
    "mmbench_cn": [
        "-m llava.eval.benchmarks.mmbench.worker {W} --question-file {D}/mmbench_cn/mmbench_dev_cn_20231003.tsv --lang cn "
        "--single-pred-prompt --answers-file {D}/mmbench_cn/answers/mmbench_dev_cn_20231003/{N}.jsonl",
        "-m llava.eval.benchmarks.mmbench.convert --annotation-file {D}/mmbench_cn/mmbench_dev_cn_20231003.tsv "
        "--result-dir {D}/mmbench_cn/answers/mmbench_dev_cn_20231003 "
        "--upload-dir {D}/mmbench_cn/answers_upload/mmbench_dev_cn_20231003 --experiment {N}",
    ],
    "seed": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/seed_bench/llava-seed-bench.jsonl "
        "--image-folder {D}/seed_bench --answers-file {D}/seed_bench/answers/{N}/merge.jsonl",
        "-m llava.eval.benchmarks.seed.convert --annotation-file {D}/seed_bench/SEED-Bench.json "
        "--result-file {D}/seed_bench/answers/{N}/merge.jsonl --result-upload-file {D}/seed_bench/answers_upload/{N}.jsonl",
    ],
    "vqav2": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/vqav2/llava_vqav2_mscoco_test-dev2015.jsonl "
        "--image-folder {D}/vqav2/test2015 --answers-file {D}/vqav2/answers/llava_vqav2_mscoco_test-dev2015/{N}/merge.jsonl",
        "-m llava.eval.benchmarks.vqav2.convert --dir {D}/vqav2 --split llava_vqav2_mscoco_test-dev2015 --ckpt {N}",
    ],
    "vizwiz": [
        "-m llava.eval.workers.model_vqa_loader {W} --question-file {D}/vizwiz/llava_test.jsonl "
        "--image-folder {D}/vizwiz/test --answers-file {D}/vizwiz/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.vizwiz.convert --annotation-file {D}/vizwiz/llava_test.jsonl "
        "--result-file {D}/vizwiz/answers/{N}.jsonl --result-upload-file {D}/vizwiz/answers_upload/{N}.json",
    ],
    "mmvet": [
        "-m llava.eval.workers.model_vqa {W} --question-file {D}/mm-vet/llava-mm-vet.jsonl "
        "--image-folder {D}/mm-vet/images --answers-file {D}/mm-vet/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.mmvet.convert --src {D}/mm-vet/answers/{N}.jsonl --dst {D}/mm-vet/results/{N}.json",
    ],
    "ocrbench": [
        "-m llava.eval.benchmarks.ocrbench.worker {W} --question-file {D}/OCRBench/OCRBench/OCRBench.json "
        "--image-folder {D}/OCRBench/OCRBench_Images --answers-file {D}/OCRBench/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.ocrbench.scorer --annotation-file {D}/OCRBench/OCRBench/OCRBench.json "
        "--result-file {D}/OCRBench/answers/{N}.jsonl --output-file {D}/OCRBench/results/{N}_OCRBench.json",
    ],
    "qbench": [
        "-m llava.eval.benchmarks.qbench.worker {W} --questions-file {D}/qbench/llvisionqa_dev.json "
        "--image-folder {D}/qbench/images_llvisionqa/ --lang en "
        "--answers-file {D}/qbench/answers/llvisionqa_dev/{N}.jsonl",
        "-m llava.eval.benchmarks.qbench.scorer --questions-file {D}/qbench/llvisionqa_dev.json "
        "--result-file {D}/qbench/answers/llvisionqa_dev/{N}.jsonl "
        "--submission-file {D}/qbench/llvisionqa_dev_{N}_answers.jsonl",
    ],
    "qbench_zh": [
        "-m llava.eval.benchmarks.qbench.worker {W} --questions-file {D}/qbench/llvisionqa_dev.json "
        "--image-folder {D}/qbench/images_llvisionqa/ --lang zh "
        "--answers-file {D}/qbench/answers/llvisionqa_zh_dev/{N}.jsonl",
        "-m llava.eval.benchmarks.qbench.scorer --questions-file {D}/qbench/llvisionqa_dev.json "
        "--result-file {D}/qbench/answers/llvisionqa_zh_dev/{N}.jsonl "
        "--submission-file {D}/qbench/llvisionqa_zh_dev_{N}_answers.jsonl",
    ],
    "videomme": [
        "-m llava.eval.benchmarks.videomme.worker {W} --question-file {D}/videomme/videomme/test.json "
        "--video-folder {D}/videomme/data --answers-file {D}/videomme/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.videomme.scorer --question-file {D}/videomme/videomme/test.json "
        "--result-file {D}/videomme/answers/{N}.jsonl --output-file {D}/videomme/results/{N}_videomme.json",
    ],
    # The benchmarks LLaVA's scripts did not have: the official files as released, the benchmark's own worker.
    "docvqa": [
        "-m llava.eval.benchmarks.docvqa.worker {W} --question-file {D}/docvqa/spdocvqa_qas/val_v1.0_withQT.json "
        "--image-folder {D}/docvqa/spdocvqa_images --answers-file {D}/docvqa/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.docvqa.scorer --annotation-file {D}/docvqa/spdocvqa_qas/val_v1.0_withQT.json "
        "--result-file {D}/docvqa/answers/{N}.jsonl",
    ],
    "infovqa": [
        "-m llava.eval.benchmarks.infovqa.worker {W} "
        "--question-file {D}/infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json "
        "--image-folder {D}/infovqa/infographicsvqa_images --answers-file {D}/infovqa/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.infovqa.scorer "
        "--annotation-file {D}/infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json "
        "--result-file {D}/infovqa/answers/{N}.jsonl",
    ],
    "chartqa": [
        "-m llava.eval.benchmarks.chartqa.worker {W} --question-file {D}/chartqa/ChartQA Dataset/test "
        "--image-folder {D}/chartqa/ChartQA Dataset/test/png --answers-file {D}/chartqa/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.chartqa.scorer --annotations {D}/chartqa/ChartQA Dataset/test "
        "--result-file {D}/chartqa/answers/{N}.jsonl",
    ],
    "ai2d": [
        "-m llava.eval.benchmarks.ai2d.worker {W} --question-file {D}/ai2d/ai2d_test_ids.csv --image-folder {D}/ai2d "
        "--answers-file {D}/ai2d/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.ai2d.scorer --question-file {D}/ai2d/ai2d_test_ids.csv "
        "--result-file {D}/ai2d/answers/{N}.jsonl",
    ],
    "mmstar": [
        "-m llava.eval.benchmarks.mmstar.worker {W} --question-file {D}/MMStar/mmstar.parquet "
        "--answers-file {D}/MMStar/answers/{N}.jsonl",
        "-m llava.eval.benchmarks.mmstar.scorer --question-file {D}/MMStar/mmstar.parquet "
        "--result-file {D}/MMStar/answers/{N}.jsonl",
    ],
    "llavabench": [  # the GPT-4 review needs OPENAI_API_KEY
        "-m llava.eval.workers.model_vqa {W} --question-file {D}/llava-bench-in-the-wild/questions.jsonl "
        "--image-folder {D}/llava-bench-in-the-wild/images --answers-file {D}/llava-bench-in-the-wild/answers/{N}.jsonl",
    ],
}


def test_every_benchmark_has_a_script():
    assert sorted(p.stem for p in SCRIPTS.glob("*.sh")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_script_runs_llavas_commands(name, tmp_path):
    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    env = {"PYTHON": str(recorder), "CKPT": "/ckpt/llava-v1.5-7b", "DATA_ROOT": str(tmp_path / "data"),
           "OPENAI_API_KEY": ""}
    proc = run_script(name, env)
    assert proc.returncode == 0, proc.stderr
    expected = [line.format(W=WORKER, D=tmp_path / "data", N=NAME) for line in EXPECTED[name]]
    assert log.read_text().splitlines() == expected
    for call in expected[1:]:  # the scorers exist
        assert (REPO / (call.split()[1].replace(".", "/") + ".py")).is_file(), call


def test_embedded_default_checkpoint_and_no_pruning(tmp_path):
    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    proc = run_script("pope", {"PYTHON": str(recorder), "DATA_ROOT": str(tmp_path), "DART": "0"})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    default = "checkpoints/llava-v1.5-tiny"  # committed: the trained embedded default
    assert (REPO / default / "config.json").is_file()
    assert calls[0].startswith(f"-m llava.eval.workers.model_vqa_loader --model-path {default} --conv-mode vicuna_v1 "
                               "--temperature 0 --batch-size 1 --question-file")
    assert calls[0].endswith(f"--answers-file {tmp_path}/pope/answers/llava-v1.5-tiny.jsonl")


def test_a_failed_worker_stops_the_others_and_nothing_is_merged(tmp_path):
    pids = tmp_path / "pids"
    worker = fake_python(tmp_path / "python", f"""
case " $* " in
  *" --chunk-idx 1 "*) echo "CUDA out of memory" >&2; exit 3 ;;
  *) echo $$ >> {pids}; exec sleep 60 ;;
esac
""")
    start = time.monotonic()
    proc = run_script("pope", {"PYTHON": str(worker), "CKPT": "/ckpt/m", "DATA_ROOT": str(tmp_path),
                               "CUDA_VISIBLE_DEVICES": "4,5,6"})
    assert proc.returncode == 3
    assert "worker 1 of 3 (CUDA_VISIBLE_DEVICES=5) failed with exit status 3" in proc.stderr
    assert "CUDA out of memory" in proc.stderr
    assert time.monotonic() - start < 50  # the workers sleeping 60 s were stopped, not waited for
    time.sleep(0.5)
    for pid in (pids.read_text() if pids.exists() else "").split():  # (a worker may be stopped before it wrote)
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not (tmp_path / "pope" / "answers" / "m-dart-0.778-128.jsonl").exists()


@pytest.mark.parametrize("refusal, resumable", [
    ("error: /a/m.chunks/1_0.jsonl holds answers made with other settings (x); pass --overwrite", False),
    ("error: /a/m.chunks/1_0.jsonl is being written by another run (pid 7 on h, started t: c)", False),
    ("RuntimeError: CUDA out of memory", True),
])
def test_the_resume_hint_is_given_only_when_running_again_resumes(tmp_path, refusal, resumable):
    worker = fake_python(tmp_path / "python", f'echo "{refusal}" >&2; exit 2\n')
    proc = run_script("pope", {"PYTHON": str(worker), "CKPT": "/ckpt/m", "DATA_ROOT": str(tmp_path),
                               "CUDA_VISIBLE_DEVICES": "0,1"})
    assert proc.returncode == 2 and refusal in proc.stderr
    assert ("run the same command again to resume" in proc.stderr) == resumable


# -- end to end: three fake GPUs on the CPU, the real worker and scorer ----------------------------------


@pytest.mark.slow
def test_textvqa_on_three_fake_gpus_equals_a_single_run(tiny_ckpt, tmp_path):
    questions, images = write_textvqa_set(tmp_path / "textvqa")
    proc = run_script("textvqa", {
        "PYTHON": sys.executable, "CKPT": str(tiny_ckpt), "DATA_ROOT": str(tmp_path), "CUDA_VISIBLE_DEVICES": "0,1,2",
        "EVAL_ARGS": "--max_new_tokens 3", "OMP_NUM_THREADS": "1",
    }, "0.778", "64", timeout=MODEL_RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answers = tmp_path / "textvqa" / "answers" / "llava-tiny-dart-0.778-64.jsonl"
    chunks = [answers.with_suffix(".chunks") / f"3_{k}.jsonl" for k in range(3)]
    assert [len(read_answers(c)) for c in chunks] == [3, 3, 1]
    assert "accuracy" in proc.stdout  # the scorer ran on the merged file

    single = tmp_path / "single.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers ran
    try:
        assert model_vqa_loader.main([
            "--model-path", str(tiny_ckpt), "--question-file", str(questions), "--image-folder", str(images),
            "--answers-file", str(single), "--is_textvqa", *GENERATION_FLAGS, *DART_FLAGS]) == 0
    finally:
        torch.set_num_threads(threads)
    assert read_answers(answers) == read_answers(single)


# -- batched evaluation: every sample benchmark, the embedded default, batch 8 == batch 1 -----------------

SAMPLE_BENCHMARKS = ["gqa", "mmbench", "mme", "pope", "sqa", "textvqa"]


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    """A copy of the shipped sample sets, so the scripts' answer files land outside the repository."""
    import shutil

    root = tmp_path_factory.mktemp("samples") / "eval"
    shutil.copytree(REPO / "playground" / "data" / "eval", root,
                    ignore=shutil.ignore_patterns("answers", "answers_upload", "eval_tool"))
    return root


def answer_lines(root: Path, name: str) -> dict[str, list[dict]]:
    files = sorted(f for f in root.glob("**/answers/**/*.jsonl")
                   if name in (f.stem, f.parent.name) and not f.name.endswith(".errors.jsonl"))
    assert files, f"no answers file named {name}.jsonl under {root}"
    return {str(f.relative_to(root)): read_answers(f) for f in files}


def worker_calls(log: Path) -> list[tuple[str, list[str]]]:
    """(module, arguments) of each worker a script started, from a recording interpreter's log: the calls with
    --batch-size (eval_answers gives every worker one; scorers and converters take none)."""
    import shlex

    calls = [shlex.split(line) for line in log.read_text().splitlines()]
    return [(words[1], words[2:]) for words in calls if words[:1] == ["-m"] and "--batch-size" in words]


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    at = argv.index(flag)
    return [*argv[:at + 1], value, *argv[at + 2:]]


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLE_BENCHMARKS)
def test_batch_size_8_answers_equal_batch_size_1_on_every_sample_benchmark(name, sample_data, tmp_path):
    """The script at batch size 8 (its workers, scorer and converters), then each of its workers' own command again
    at batch size 1, in this process, on as many threads: a second script run would only repeat the start of an
    interpreter that imports torch and transformers."""
    import importlib

    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f"printf '%q ' \"$@\" >> {log}; echo >> {log}\n"
                                                f'exec {sys.executable} "$@"\n')
    threads = subprocess_threads()
    env = {"PYTHON": str(recorder), "DATA_ROOT": str(sample_data), "OMP_NUM_THREADS": threads,
           "BATCH_SIZE": "8", "NAME": f"{name}-batch8"}
    proc = run_script(name, env, timeout=MODEL_RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = worker_calls(log)
    assert calls and all(argv[argv.index("--batch-size") + 1] == "8" for _, argv in calls)
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))  # as the script's workers ran
    try:
        for n, (module, argv) in enumerate(calls):
            eight = Path(argv[argv.index("--answers-file") + 1])
            one = tmp_path / f"batch1-{n}.jsonl"
            argv = with_flag(with_flag(argv, "--batch-size", "1"), "--answers-file", str(one))
            assert importlib.import_module(module).main(argv) == 0
            one, eight = read_answers(one), read_answers(eight)
            assert len(one) >= 30 and [a["question_id"] for a in one] == [a["question_id"] for a in eight]
            assert [a["text"] for a in eight] == [a["text"] for a in one]
            assert [{k: v for k, v in a.items() if k != "metadata"} for a in eight] == [
                {k: v for k, v in a.items() if k != "metadata"} for a in one]
            assert [a["metadata"]["image_tokens_kept"] for a in eight] == [
                a["metadata"]["image_tokens_kept"] for a in one]
    finally:
        torch.set_num_threads(before)


# The document, chart and diagram benchmarks: their scorers' summaries on the sample sets (60 questions each).
DETAIL_BENCHMARKS = {
    "docvqa": r"DocVQA: ANLS [\d.]+ \([\d.]+%\) over 60 questions",
    "infovqa": r"InfographicVQA: ANLS [\d.]+ \([\d.]+%\) over 60 questions",
    "chartqa": r"ChartQA: relaxed accuracy [\d.]+ \(mean of the sets\): human [\d.]+ \(\d+/30\), augmented [\d.]+ \(\d+/30\)",
    "ai2d": r"AI2D test: accuracy [\d.]+% \(\d+ of 60",
    "mmstar": r"MMStar: average [\d.]+% \(mean of 18 l2 categories; .*over questions [\d.]+% \(\d+ of 60\)",
}

# The scripts of the benchmarks scored elsewhere (a server, a GPT grader) or without a shipped score before:
# on the sample sets each runs its workers and converter end to end and says what it wrote.
END_TO_END = {
    "seed": r"SEED-Bench: accuracy [\d.]+% over 60 questions",
    "mmbench_cn": r"submit .*mmbench_dev_cn_20231003/e2e\.xlsx to the MMBench evaluation server",
    "vqav2": r"upload .*answers_upload/llava_vqav2_mscoco_test-dev2015/e2e\.json to the VQA Challenge",
    "vizwiz": r"upload .*vizwiz/answers_upload/e2e\.json to the VizWiz VQA Challenge",
    "mmvet": r"grade .*mm-vet/results/e2e\.json with MM-Vet's GPT-4 grader",
    "llavabench": r"OPENAI_API_KEY is unset: skipping the GPT-4 review; answers are in .*e2e\.jsonl",
    "ocrbench": r"OCRBench: score \d+ of 60 \([\d.]+%; the full set has 1000\): text recognition \d+/30, "
                r"Scene Text-centric VQA \d+/30",
    "qbench": r"Q-Bench: accuracy [\d.]+% over 60 questions \(yes-or-no [\d.]+%, how .*; answers for Q-Bench: "
              r".*llvisionqa_dev_e2e_answers\.jsonl",
    "qbench_zh": r"Q-Bench: accuracy [\d.]+% over 60 questions .*llvisionqa_zh_dev_e2e_answers\.jsonl",
    **DETAIL_BENCHMARKS,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(END_TO_END))
def test_every_sample_benchmark_script_runs_end_to_end(name, sample_data):
    # Short answers: what is tested is the script's path (workers, scorer, converters), not how long the tiny model
    # goes on answering an open question (up to 1024 tokens for MM-Vet and LLaVA-Bench).
    env = {"PYTHON": sys.executable, "DATA_ROOT": str(sample_data), "OMP_NUM_THREADS": subprocess_threads(),
           "NAME": "e2e", "EVAL_ARGS": "--max_new_tokens 8"}
    proc = run_script(name, env, timeout=MODEL_RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(END_TO_END[name], proc.stdout + proc.stderr), proc.stdout + proc.stderr
    folder = {"seed": "seed_bench", "mmvet": "mm-vet", "llavabench": "llava-bench-in-the-wild", "ocrbench": "OCRBench",
              "qbench_zh": "qbench", "mmstar": "MMStar"}.get(name, name)
    answered = {path: lines for path, lines in answer_lines(sample_data, "e2e").items() if path.startswith(folder + "/")}
    assert any(len(lines) == 60 for lines in answered.values()), answered.keys()
    if name in sweep.BENCHMARKS:  # the sweep reads the score from the file this script's scorer wrote
        assert 0 <= sweep.BENCHMARKS[name][1](sample_data, "e2e") <= 100


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DETAIL_BENCHMARKS))
def test_detail_benchmark_scripts_run_end_to_end_on_the_llava_1_6_default(name, sample_data):
    """The new benchmarks on the other tiny default (anyres): the v1_6 script, its workers and its scorer."""
    env = {"PYTHON": sys.executable, "DATA_ROOT": str(sample_data), "OMP_NUM_THREADS": subprocess_threads(),
           "NAME": "e2e-1.6"}
    proc = run_script(name, env, timeout=MODEL_RUN_TIMEOUT, scripts=SCRIPTS_V1_6)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "image tokens kept per question" in proc.stdout + proc.stderr
    assert re.search(DETAIL_BENCHMARKS[name], proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert 0 <= sweep.BENCHMARKS[name][1](sample_data, "e2e-1.6") <= 100


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    from llava.model.tiny_qwen import build_tiny_qwen_checkpoint

    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp("qwen") / "qwen2_5_vl-tiny", "qwen2_5_vl")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["docvqa", "ai2d"])
def test_detail_benchmark_scripts_run_a_qwen_checkpoint(name, sample_data, tiny_qwen):
    """The same scripts take a Qwen checkpoint (CKPT=...): its chat template, DART by the reduction ratio alone.
    Two of them, a short answer and a multiple choice: every script is the same line over the shared runner, and
    the registry's steps for each are tested without a model (test_script_runs_llavas_commands)."""
    env = {"PYTHON": sys.executable, "DATA_ROOT": str(sample_data), "OMP_NUM_THREADS": subprocess_threads(),
           "NAME": "e2e-qwen", "CKPT": str(tiny_qwen), "EVAL_ARGS": "--max_new_tokens 3"}
    proc = run_script(name, env, "0.5", timeout=MODEL_RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept, total = map(float, sweep.KEPT_LINE.search(proc.stdout).groups())
    assert 0 < kept < total  # pruned, by the ratio
    assert re.search(DETAIL_BENCHMARKS[name], proc.stdout + proc.stderr), proc.stdout + proc.stderr


# -- LLaVA-1.6: scripts/v1_6/eval/*.sh run the v1_5 commands with the 1.6 budget and default -------------

SCRIPTS_V1_6 = REPO / "scripts" / "v1_6" / "eval"
DART_V1_6 = ("--sparse --pruned_layer 2 --pivot_image_token 4 --pivot_text_token 4 --attn_implementation sdpa "
             "--reduction_ratio 0.778 --retain_token_num_for_llava_next 320")


def test_every_v1_5_benchmark_has_a_v1_6_script():
    assert sorted(p.stem for p in SCRIPTS_V1_6.glob("*.sh")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_v1_6_script_runs_the_benchmarks_commands_with_the_1_6_budget(name, tmp_path):
    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    env = {"PYTHON": str(recorder), "CKPT": "/ckpt/llava-v1.6-vicuna-7b", "DATA_ROOT": str(tmp_path / "data"),
           "OPENAI_API_KEY": ""}
    proc = run_script(name, env, scripts=SCRIPTS_V1_6)
    assert proc.returncode == 0, proc.stderr
    worker = ("--model-path /ckpt/llava-v1.6-vicuna-7b --conv-mode vicuna_v1 --temperature 0 --batch-size 1 "
              + DART_V1_6)
    expected = [line.format(W=worker, D=tmp_path / "data", N="llava-v1.6-vicuna-7b-dart-0.778-320")
                for line in EXPECTED[name]]
    assert log.read_text().splitlines() == expected


def test_v1_6_scripts_default_to_the_tiny_llava_1_6_checkpoint(tmp_path):
    log = tmp_path / "calls.log"
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    proc = run_script("pope", {"PYTHON": str(recorder), "DATA_ROOT": str(tmp_path)}, "0.778", "160",
                      scripts=SCRIPTS_V1_6)
    assert proc.returncode == 0, proc.stderr
    default = "checkpoints/llava-v1.6-tiny"
    config = json.loads((REPO / default / "config.json").read_text())
    assert config["image_aspect_ratio"] == "anyres" and config["mm_patch_merge_type"] == "spatial_unpad"
    call = log.read_text().splitlines()[0]
    assert call.startswith(f"-m llava.eval.workers.model_vqa_loader --model-path {default} ")
    assert "--retain_token_num_for_llava_next 160" in call
    assert call.endswith(f"--answers-file {tmp_path}/pope/answers/llava-v1.6-tiny-dart-0.778-160.jsonl")
