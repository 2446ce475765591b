"""Our models in the stock lmms-eval (installed by `scripts/setup_env.sh test` the way docs/LmmsEval.md says):
the entry point, the offline sample tasks against our own workers and scorers, batches and processes, the
release's model_args, loglikelihood, and clear errors for bad model_args."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lmms_eval.api.instance import Instance
from lmms_eval.models import get_model
from PIL import Image
from suite_timeouts import hang_timeout
from transformers import Qwen2VLForConditionalGeneration

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.workers import model_vqa_loader
from llava.eval.benchmarks.mme.scorer import score_mme
from llava.eval.benchmarks.mme.convert import convert, load_ground_truth
from llava.eval.benchmarks.pope.scorer import load_label_files, score_pope
from llava.lmms_plugin.models import (LlavaDart, LlavaOnevisionDart, ModelArgsError, Qwen2_5_VLDart, Qwen2VLDart,
                                     Qwen3VLDart)
from llava.model.tiny_qwen import build_tiny_qwen_checkpoint

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "playground/data/eval"
POPE_QUESTIONS, POPE_IMAGES = DATA / "pope/llava_pope_test.jsonl", DATA / "pope/val2014"
MME_QUESTIONS, MME_IMAGES = DATA / "MME/llava_mme.jsonl", DATA / "MME/MME_Benchmark_release_version"
LIMIT = 12
RELEASE_ARGS = ("Sparse=True,pruned_layer=2,image_token_start_index=0,image_token_length=0,max_num_trunction=128,"
                "reduction_ratio=0.778,pivot_image_token=4,pivot_text_token=4")


@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp("qwen") / "qwen2-vl-tiny", "qwen2_vl", seed=2)


def run_lmms_eval(out: Path, model: str, model_args: str, batch_size: int = 1, processes: int = 1,
                  limit: int = LIMIT) -> dict:
    """`python -m lmms_eval` on both sample tasks from the repository root, offline: {task: (metrics, answers in
    document order)}."""
    command = ["-m", "lmms_eval", "--model", model, "--model_args", model_args,
               "--tasks", "pope_dart_sample,mme_dart_sample", "--include_path", "llava/lmms_plugin/tasks",
               "--limit", str(limit), "--batch_size", str(batch_size), "--output_path", str(out), "--log_samples"]
    # --standalone: the rendezvous takes a free port, so a torchrun elsewhere on the machine (a second checkout's
    # suite) cannot collide with this one on the default 29500
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run([*launcher, *command], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=hang_timeout(1800))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # lmms-eval logs a failed evaluation (to stdout) and still exits 0
    assert "Error during evaluation" not in proc.stdout + proc.stderr, proc.stdout[-4000:]
    metrics = json.loads(next(out.rglob("*_results.json")).read_text())["results"]
    results = {}
    for task in ("pope_dart_sample", "mme_dart_sample"):
        (samples_file,) = out.rglob(f"*_samples_{task}.jsonl")
        samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
        results[task] = ({k.split(",")[0]: v for k, v in metrics[task].items() if k.endswith(",none")},
                         [s["filtered_resps"] for s in samples])
    return results


def first_lines(path: Path, out: Path, n: int = LIMIT) -> Path:
    out.write_text("".join(path.read_text().splitlines(keepends=True)[:n]))
    return out


def our_answers(tmp_path: Path, checkpoint, questions: Path, images: Path, extra=()) -> list[dict]:
    """Our own eval worker on the same questions, greedy, with the same budget."""
    answers = tmp_path / f"answers_{questions.stem}.jsonl"
    argv = ["--model-path", str(checkpoint), "--question-file", str(questions), "--image-folder", str(images),
            "--answers-file", str(answers), "--temperature", "0", "--max_new_tokens", "128", "--conv-mode",
            "vicuna_v1", "--device", "cpu", "--sparse", *extra]
    assert model_vqa_loader.main(argv) == 0
    return [json.loads(line) for line in answers.read_text().splitlines()]


def our_scores(tmp_path: Path, checkpoint, extra=(), limit: int = LIMIT) -> tuple[dict, dict]:
    pope_questions = first_lines(POPE_QUESTIONS, tmp_path / "pope_questions.jsonl", limit)
    pope = our_answers(tmp_path, checkpoint, pope_questions, POPE_IMAGES, extra)
    questions = [json.loads(line) for line in pope_questions.read_text().splitlines()]
    pope_score = score_pope(load_label_files(str(DATA / "pope/coco")), questions, pope)
    mme_questions = first_lines(MME_QUESTIONS, tmp_path / "mme_questions.jsonl", limit)
    mme = our_answers(tmp_path, checkpoint, mme_questions, MME_IMAGES, extra)
    mme_score = score_mme(convert(mme, load_ground_truth(str(MME_IMAGES))))["perception"]["total"]
    return ({"accuracy": pope_score["mean_accuracy"], "f1": pope_score["mean_f1"], "mme": mme_score},
            {"pope": [a["text"] for a in pope], "mme": [a["text"] for a in mme]})


def test_lmms_eval_finds_our_models_through_the_entry_point():
    assert get_model("llava_dart") is LlavaDart
    assert get_model("qwen2_vl_dart") is Qwen2VLDart and get_model("qwen2_5_vl_dart") is Qwen2_5_VLDart
    assert get_model("qwen3_vl_dart") is Qwen3VLDart and get_model("llava_onevision_dart") is LlavaOnevisionDart
    assert get_model("llava").__module__.startswith("lmms_eval.")  # lmms-eval's own, not shadowed


def _check_same(lmms: dict, ours: tuple[dict, dict]) -> None:
    scores, answers = ours
    (pope_metrics, pope_answers), (mme_metrics, mme_answers) = lmms["pope_dart_sample"], lmms["mme_dart_sample"]
    assert pope_answers == answers["pope"] and mme_answers == answers["mme"]
    assert pope_metrics["pope_accuracy"] == pytest.approx(scores["accuracy"])
    assert pope_metrics["pope_f1"] == pytest.approx(scores["f1"])
    assert mme_metrics["mme_perception_score"] == pytest.approx(scores["mme"])


@pytest.mark.slow
def test_llava_dart_in_lmms_eval_equals_our_worker_and_scorer_at_any_batch_size_and_in_two_processes(tmp_path):
    ours = our_scores(tmp_path, DEFAULT_MODEL_PATH, ["--max_num_trunction", "128"])
    args = f"pretrained={DEFAULT_MODEL_PATH},{RELEASE_ARGS}"
    single = run_lmms_eval(tmp_path / "b1", "llava_dart", f"{args},device=cpu")
    _check_same(single, ours)
    assert ours[0]["accuracy"] > 0.8  # the embedded default answers these well: the comparison means something
    assert run_lmms_eval(tmp_path / "b4", "llava_dart", f"{args},device=cpu", batch_size=4) == single
    # torchrun's two ranks, batches of 2 each: lmms-eval gathers the same answers and metrics as one process
    assert run_lmms_eval(tmp_path / "p2", "llava_dart", args, batch_size=2, processes=2) == single


@pytest.mark.slow
def test_qwen2_vl_dart_in_lmms_eval_equals_our_worker_with_the_releases_model_args(tmp_path, qwen_ckpt):
    # Half the questions of the LLaVA tests: at the release's pixel budget the sample images are encoded whole
    # (hundreds of tokens each), and 6 still make a full and a partial batch of 4.
    limit = LIMIT // 2
    ours = our_scores(tmp_path, qwen_ckpt, ["--reduction_ratio", "0.778"], limit)
    args = f"pretrained={qwen_ckpt},device=cpu,{RELEASE_ARGS}"
    single = run_lmms_eval(tmp_path / "q1", "qwen2_vl_dart", args, limit=limit)
    _check_same(single, ours)
    assert run_lmms_eval(tmp_path / "q4", "qwen2_vl_dart", args, batch_size=4, limit=limit) == single


BAD_MODEL_ARGS = {
    "unknown argument": ("pretrained={llava},spars=True", "unknown model_args spars"),
    "Sparse not a boolean": ("pretrained={llava},Sparse=yes", "model_args Sparse='yes': expected True or False"),
    "budget not an integer": ("pretrained={llava},Sparse=True,max_num_trunction=1.5",
                              "model_args max_num_trunction=1.5: expected an integer"),
    # lmms-eval reads "-1" as the float -1.0 (only digit strings become integers): the range is what is wrong
    "budget out of range": ("pretrained={llava},Sparse=True,max_num_trunction=-1",
                            "model_args max_num_trunction=-1 is out of range: it must be in 0..65536"),
    "K out of range": ("pretrained={llava},Sparse=True,pruned_layer=0", "model_args pruned_layer=0 is out of range"),
    "K too deep": ("pretrained={llava},Sparse=True,pruned_layer=40", "model_args: DART_config['K']=40 must be in"),
    "unknown method": ("pretrained={llava},Sparse=True,pruning_method=magic", "DART_config['method']='magic' is unknown"),
    "wrong family": ("pretrained={llava}", "is a llava_llama checkpoint, which --model llava_dart runs; this is "
                                           "--model qwen2_vl_dart"),
    "unknown template": ("pretrained={llava},conv_template=vicuna_v9", "Unknown conversation template 'vicuna_v9'"),
}


@pytest.mark.parametrize("case", list(BAD_MODEL_ARGS))
def test_bad_model_args_get_a_clear_error(case):
    arg_string, message = BAD_MODEL_ARGS[case]
    model_class = Qwen2VLDart if case == "wrong family" else LlavaDart
    with pytest.raises((ModelArgsError, ValueError), match=None) as error:
        model_class.create_from_arg_string(arg_string.format(llava=DEFAULT_MODEL_PATH), {"device": "cpu"})
    assert message in str(error.value)


@pytest.mark.slow
def test_a_bad_model_arg_stops_the_lmms_eval_command_with_the_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", "llava_dart", "--model_args",
         f"pretrained={DEFAULT_MODEL_PATH},device=cpu,spars=True", "--tasks", "pope_dart_sample", "--include_path",
         "llava/lmms_plugin/tasks", "--limit", "1", "--output_path", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=hang_timeout(1200),
    )
    assert "unknown model_args spars" in proc.stdout + proc.stderr


def _loglikelihood_request(model, image: Image.Image, context: str, continuation: str):
    model.task_dict = {"t": {"test": {0: {"image": image}}}}
    return Instance("loglikelihood", (context, continuation, lambda doc: [doc["image"]], 0, "t", "test"), 0,
                    {"task": "t", "doc_id": 0, "repeats": 1})


def test_qwen_loglikelihood_without_pruning_equals_transformers_own_model(qwen_ckpt):
    image = Image.open(POPE_IMAGES / json.loads(POPE_QUESTIONS.read_text().splitlines()[0])["image"]).convert("RGB")
    model = Qwen2VLDart(pretrained=str(qwen_ckpt), device="cpu")
    (logprob, greedy), = model.loglikelihood([_loglikelihood_request(model, image, "Is there a square?", " Yes")])

    reference = Qwen2VLForConditionalGeneration.from_pretrained(qwen_ckpt).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a square?"}]}]
    prompt = model.loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = model.loaded.processor(text=[prompt], images=[image], return_tensors="pt")
    target = model.tokenizer(" Yes", add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([inputs["input_ids"], target], dim=1)
    token_types = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(target)], dim=1)
    with torch.no_grad():
        logits = reference(input_ids=ids, mm_token_type_ids=token_types, pixel_values=inputs["pixel_values"],
                           image_grid_thw=inputs["image_grid_thw"]).logits
    scored = logits[0, -target.shape[1] - 1 : -1].log_softmax(-1)
    assert logprob == pytest.approx(scored.gather(1, target[0][:, None]).sum().item(), abs=1e-4)
    assert greedy == bool((scored.argmax(-1) == target[0]).all())


def test_pruned_loglikelihood_scores_what_pruned_decoding_would_write(tmp_path):
    """With DART the continuation is scored after the context's own pruning: the greedy answer of generate
    (prefill pruned, then cached decoding) gets the log-probability of its own decoding steps."""
    image = Image.open(POPE_IMAGES / json.loads(POPE_QUESTIONS.read_text().splitlines()[0])["image"]).convert("RGB")
    model = LlavaDart(pretrained=DEFAULT_MODEL_PATH, device="cpu", Sparse=True, max_num_trunction=32)
    question = "Is there a black triangle in the image?\nAnswer the question using a single word or phrase."
    prepared = model._prepare(0, question, [image])
    with torch.inference_mode():
        out = model.model.generate(**model.loaded.generate_inputs([prepared.inputs]), max_new_tokens=3, do_sample=False,
                                   output_scores=True, return_dict_in_generate=True)
    tokens = out.sequences[0]
    expected = sum(step[0].log_softmax(-1)[token].item() for step, token in zip(out.scores, tokens))
    continuation = model.tokenizer.decode(tokens)
    assert model.tokenizer(continuation, add_special_tokens=False).input_ids == tokens.tolist()  # round trip
    (logprob, greedy), = model.loglikelihood([_loglikelihood_request(model, image, question, continuation)])
    assert greedy and logprob == pytest.approx(expected, abs=1e-4)


def _lmms_eval_command(tmp_path: Path, model: str, model_args: str, *extra: str):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", model, "--model_args", model_args, "--tasks", "pope_dart_sample",
         "--include_path", "llava/lmms_plugin/tasks", "--limit", str(LIMIT), "--output_path", str(tmp_path),
         "--log_samples", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=hang_timeout(1200),
    )


def _answers(out: Path) -> list[str]:
    (samples_file,) = out.rglob("*_samples_pope_dart_sample.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    return [s["filtered_resps"] for s in samples]


@pytest.mark.slow
def test_lmms_evals_own_llava_model_runs_on_our_package_with_dart_from_customized_config(tmp_path):
    """lmms-eval's built-in `--model llava` imports our llava.model.builder / mm_utils / conversation; DART comes
    in through `customized_config` (config attributes), and it answers as llava_dart with the same budget."""
    dart = {"K": 2, "image_token_start_index": None, "image_token_length": None, "max_num_trunction": 64,
            "reduction_ratio": 0.778, "retain_token_num_for_llava_next": None, "pivot_image_token": 4,
            "pivot_text_token": 4}
    config = tmp_path / "dart.json"
    config.write_text(json.dumps({"DART_config": dart}))
    theirs = _lmms_eval_command(tmp_path / "theirs", "llava",
                                f"pretrained={DEFAULT_MODEL_PATH},device_map=auto,customized_config={config}",
                                "--device", "cpu")
    assert "Error during evaluation" not in theirs.stdout + theirs.stderr, theirs.stdout[-3000:]
    # lmms-eval's log says that (and how) it prunes: our loader's line, passed on to its log
    assert "DART prunes every call of the model: K=2," in theirs.stdout and "max_num_trunction=64" in theirs.stdout
    ours = _lmms_eval_command(tmp_path / "ours", "llava_dart",
                              f"pretrained={DEFAULT_MODEL_PATH},device=cpu,Sparse=True,max_num_trunction=64")
    assert _answers(tmp_path / "theirs") == _answers(tmp_path / "ours")
    assert "LlavaDart: " in ours.stdout and "'max_num_trunction': 64" in ours.stdout  # our model's own line
    assert "image tokens kept: " in ours.stdout

    # The settings are really read: a layer the model does not have stops the run, naming it.
    config.write_text(json.dumps({"DART_config": {**dart, "K": 99}}))
    bad = _lmms_eval_command(tmp_path / "bad", "llava",
                             f"pretrained={DEFAULT_MODEL_PATH},device_map=auto,customized_config={config}", "--device",
                             "cpu")
    assert "DART_config['K']=99 must be in" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_the_release_style_script_runs_a_qwen_checkpoint(tmp_path, qwen_ckpt):
    env = {**os.environ, "CKPT": str(qwen_ckpt), "TASKS": "pope_dart_sample", "LIMIT": "2",
           "OUTPUT": str(tmp_path / "out"), "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(["bash", "scripts/qwen2_vl/lmms_eval.sh", "True", "0.5"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=hang_timeout(1200))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|pope_dart_sample|" in proc.stdout and "Error during evaluation" not in proc.stdout
    assert "qwen2_vl_dart on" in proc.stderr and "Sparse=True ratio 0.5" in proc.stderr
    (results,) = (tmp_path / "out").rglob("*_results.json")
    assert "reduction_ratio=0.5" in json.loads(results.read_text())["config"]["model_args"]


def test_the_installed_lmms_eval_is_the_one_the_extras_pin():
    import importlib.metadata
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = [r for r in extras["lmms"] if r.startswith("lmms-eval")]
    assert pin == f"lmms-eval=={importlib.metadata.version('lmms-eval')}"
    assert "filelock>=3.12,<4.2" in extras["lmms"] and "filelock>=3.12,<4.2" in extras["lmms-cpu"]


def _run_lmms_script(script: str, env: dict, *args: str):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run(["bash", f"scripts/{script}/lmms_eval.sh", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=hang_timeout(1200))


@pytest.mark.parametrize("script", ["v1_5", "qwen2_vl", "qwen2_5_vl"])
def test_the_script_fails_when_lmms_eval_reports_an_error_during_evaluation(tmp_path, script):
    """lmms-eval catches a failed evaluation, logs it and exits 0; the scripts read its output and fail."""
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\nif [[ "$1 $2" == "-m lmms_eval" ]]; then\n'
                    '    echo "| ERROR | __main__:cli_evaluate:614 - Error during evaluation: boom. Please set '
                    '\\`--verbosity=DEBUG\\` to get more information."\nfi\nexit 0\n')
    fake.chmod(0o755)
    proc = _run_lmms_script(script, {"PYTHON": str(fake), "CKPT": str(tmp_path / "ckpt")})
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Error during evaluation: boom" in proc.stdout  # lmms-eval's own output still shows
    assert "error: lmms-eval reported an error during evaluation" in proc.stderr


BAD_SCRIPT_RUNS = {
    "unknown model_arg": ({"MODEL_ARGS": "spars=True"}, (), "error: unknown model_args spars"),
    "budget out of range": ({}, ("True", "0.778", "-1"), "error: model_args max_num_trunction=-1 is out of range"),
    "ratio out of range": ({}, ("True", "1.5"), "error: model_args reduction_ratio=1.5 is out of range"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_SCRIPT_RUNS))
def test_a_bad_model_arg_stops_the_script_with_our_message_and_no_traceback(tmp_path, case):
    env, args, message = BAD_SCRIPT_RUNS[case]
    proc = _run_lmms_script("v1_5", {"PYTHON": sys.executable, "OUTPUT": str(tmp_path), **env}, *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not any(tmp_path.iterdir())  # stopped before lmms-eval ran
