"""Every released checkpoint family loads exactly as released: tiny checkpoints in the hub repos' own layouts
(`llava.model.released_layouts`) load strictly, put every tensor on disk in its place, answer as an independent
reference built from the same files, load by hub id from an offline cache, and give the same answers file twice.

The LLaVA configs name their vision tower "openai/clip-vit-large-patch14-336"; a tiny look-alike of that repo sits
in a module-wide offline hub cache (in this process through huggingface_hub's constants, in the workers' through
HF_HUB_CACHE / HF_HUB_OFFLINE).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import huggingface_hub.constants
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from suite_timeouts import hang_timeout

from llava.eval.workers import model_vqa_loader
from llava.eval.core.prompting import build_prompt
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model import PruningRecord, released_layouts
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config
from llava.model.released_layouts import (CLIP_TOWER_ID, RELEASED_LAYOUTS, YI_EOS_ID, YI_PIECES,
                                          build_clip_tower, build_released_checkpoint, install_in_hub_cache,
                                          read_checkpoint_tensors)

# The original-layout and Qwen releases; the llava-hf ones (conversions, and LLaVA-OneVision) have their own tests
# (test_llava_hf_released.py, test_llava_onevision.py).
ORIGINAL_IDS = [r for r, layout in RELEASED_LAYOUTS.items() if layout.family not in ("llava_hf", "llava_onevision")]
LLAVA_IDS = [r for r in ORIGINAL_IDS if not RELEASED_LAYOUTS[r].family.startswith("qwen")]
QWEN_IDS = [r for r in ORIGINAL_IDS if RELEASED_LAYOUTS[r].family.startswith("qwen")]
TOWER_PREFIX = "model.vision_tower.vision_tower."
QUESTION = "What is shown in the image?"


def short(repo_id: str) -> str:
    return repo_id.split("/")[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """An offline hub cache holding the CLIP look-alike, in force for the whole module."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    clip = install_in_hub_cache(CLIP_TOWER_ID, build_clip_tower(root / "clip"), cache)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield cache, clip


@pytest.fixture(scope="module")
def checkpoints(hub_cache, tmp_path_factory):
    """Every layout, written once; after the cache is in force (every LLaVA load resolves the CLIP tower there)."""
    root = tmp_path_factory.mktemp("released")
    return {repo_id: build_released_checkpoint(repo_id, root / short(repo_id)) for repo_id in ORIGINAL_IDS}


@pytest.fixture(scope="module", params=ORIGINAL_IDS, ids=short)
def released(request, checkpoints):
    """(repo id, checkpoint dir, what the builder returned for it)."""
    repo_id = request.param
    path = checkpoints[repo_id]
    return repo_id, path, load_pretrained_model(str(path), None, device="cpu")


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(1)
    pixels = (torch.rand(40, 56, 3, generator=g) * 60).to(torch.uint8)
    pixels[10:30, 12:40] = torch.tensor([220, 40, 40], dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def qwen_module_name(name: str) -> str:
    """As transformers 5 renames the released Qwen2-VL / 2.5-VL tensors on load: `model.X` ->
    `model.language_model.X`, `visual.X` -> `model.visual.X` (Qwen3-VL's are released under those names)."""
    if name.startswith(("model.language_model.", "model.visual.")):
        return name
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model."):
        return "model.language_model." + name.removeprefix("model.")
    return name


def expected_model_tensors(repo_id, path, clip_snapshot) -> dict[str, torch.Tensor]:
    """The loaded model's state dict as the files dictate, by the model's names: transformers 5 names a
    CLIPVisionModel's modules without `vision_model.`, and Qwen's language model and tower one level down."""
    on_disk = read_checkpoint_tensors(path)
    if repo_id in QWEN_IDS:
        return {qwen_module_name(name): t for name, t in on_disk.items()}
    expected = {}
    for name, tensor in on_disk.items():
        if name.endswith("rotary_emb.inv_freq"):  # computed at init, never loaded (strict_loading.HARMLESS)
            continue
        expected[name.replace(TOWER_PREFIX + "vision_model.", TOWER_PREFIX)] = tensor
    if not any(name.startswith(TOWER_PREFIX) for name in expected):  # LLaVA-1.5: the hub's tower
        hub_tower = load_file(clip_snapshot / "model.safetensors")
        expected.update({TOWER_PREFIX + name.removeprefix("vision_model."): t for name, t in hub_tower.items()
                         if name.startswith("vision_model.") and not name.endswith("position_ids")})
    return expected


def assert_holds(model, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    for name, tensor in expected.items():
        # float16 / bfloat16 on disk, float32 on the CPU: the upcast is exact.
        assert torch.equal(state[name], tensor.to(state[name].dtype)), name


def test_every_tensor_on_disk_is_in_its_place_and_nothing_else_is(released, hub_cache):
    repo_id, path, (tokenizer, model, processor, _) = released
    assert_holds(model, expected_model_tensors(repo_id, path, hub_cache[1]))
    if repo_id in QWEN_IDS:
        assert type(tokenizer).__name__ == "Qwen2Tokenizer"
        return
    assert type(tokenizer).__name__ == "LlamaTokenizer"  # the class the files declare, as LLaVA loaded it
    assert type(model).__name__ == {"llava_mistral": "LlavaMistralForCausalLM"}.get(
        RELEASED_LAYOUTS[repo_id].family, "LlavaLlamaForCausalLM")
    assert processor is not None


@pytest.mark.parametrize("repo_id", [r for r in LLAVA_IDS if "v1.6" in r], ids=short)
def test_a_1_6_release_carries_a_whole_tower_unlike_the_hubs(repo_id, checkpoints, hub_cache):
    tower = {name.removeprefix(TOWER_PREFIX): t for name, t in read_checkpoint_tensors(checkpoints[repo_id]).items()
             if name.startswith(TOWER_PREFIX)}
    hub = load_file(hub_cache[1] / "model.safetensors")
    assert sorted(tower) == sorted(n for n in hub if n.startswith("vision_model.") and not n.endswith("position_ids"))
    assert "vision_model.post_layernorm.weight" in tower
    # Fine-tuned: no weight left as the hub has it, so features tell the two towers apart.
    assert not any(torch.equal(t.float(), hub[name]) for name, t in tower.items())


@pytest.mark.parametrize("repo_id", QWEN_IDS, ids=short)
def test_qwens_vocab_and_merges_describe_the_tokenizer_json(repo_id, checkpoints, tmp_path):
    from transformers import AutoTokenizer

    path = checkpoints[repo_id]
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(path / name, tmp_path / name)
    full, from_bpe_files = AutoTokenizer.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(tmp_path))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"{QUESTION} Yes, 42!\n"}]}]
    text = full.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert full(text).input_ids == from_bpe_files(text).input_ids


def test_the_special_tokens_have_the_ids_the_config_names(released):
    repo_id, _, (tokenizer, model, _, _) = released
    config = model.config
    if repo_id in QWEN_IDS:
        for token, field in (("<|image_pad|>", "image_token_id"), ("<|video_pad|>", "video_token_id"),
                             ("<|vision_start|>", "vision_start_token_id"), ("<|vision_end|>", "vision_end_token_id")):
            assert tokenizer.convert_tokens_to_ids(token) == getattr(config, field)
        assert tokenizer.eos_token_id == config.get_text_config().eos_token_id
        return
    assert tokenizer.eos_token_id == config.eos_token_id
    if repo_id == "liuhaotian/llava-v1.6-34b":
        assert (tokenizer.bos_token, tokenizer.eos_token, config.eos_token_id) == (YI_PIECES[1], "<|im_end|>", YI_EOS_ID)
        ids = tokenizer_image_token(build_prompt(QUESTION, "chatml_direct"), tokenizer)
        # Each chat marker is one token: 6 <|im_start|>, 7 <|im_end|>; Yi adds no BOS.
        assert ids[0] == 6 and ids.count(6) == 3 and ids.count(7) == 2
    else:
        assert tokenizer("a").input_ids[0] == config.bos_token_id == 1


# -- against references on the same files --------------------------------------------------------------------


def llava_llama_copy(path, dst, clip_snapshot):
    """The same weights in our own original format (model_type llava_llama, one safetensors file, the tower as a
    local CLIP directory): the release's tower tensors when it carries them (1.6), else the hub's (1.5)."""
    dst.mkdir()
    tensors = read_checkpoint_tensors(path)
    tower = {name.removeprefix(TOWER_PREFIX): t for name, t in tensors.items() if name.startswith(TOWER_PREFIX)}
    tower_dir = dst / "vision_tower"
    tower_dir.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copyfile(clip_snapshot / name, tower_dir / name)
    if not tower:
        tower = {k: t for k, t in load_file(clip_snapshot / "model.safetensors").items() if k.startswith("vision_model.")}
    save_file({k: t.contiguous() for k, t in tower.items()}, str(tower_dir / "model.safetensors"))
    rest = {name: t for name, t in tensors.items() if not name.startswith(TOWER_PREFIX) and not name.endswith("inv_freq")}
    save_file(rest, str(dst / "model.safetensors"))
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], mm_vision_tower="vision_tower",
                  unfreeze_mm_vision_tower=False)
    (dst / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (path / name).is_file():
            shutil.copyfile(path / name, dst / name)
    return dst


def test_pruning_off_answers_as_a_reference_on_the_same_weights(released, hub_cache, image, tmp_path):
    repo_id, path, (tokenizer, model, processor, _) = released
    assert getattr(model.config, "DART_config", None) is None
    if repo_id in QWEN_IDS:
        from transformers import (Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration,
                                  Qwen3VLForConditionalGeneration)

        library_class = {"qwen2_vl": Qwen2VLForConditionalGeneration,
                         "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
                         "qwen3_vl": Qwen3VLForConditionalGeneration}[model.config.model_type]
        reference, info = library_class.from_pretrained(str(path), dtype=torch.float32, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = dict(processor(text=[text], images=[image], return_tensors="pt"))
        assert int((inputs["input_ids"] == model.config.image_token_id).sum()) > 0
    else:
        # A LLaMA with the same weights is the reference for Mistral too: with no sliding window they compute the same.
        _, reference, _, _ = load_pretrained_model(str(llava_llama_copy(path, tmp_path / "copy", hub_cache[1])), None,
                                                   device="cpu")
        assert type(reference).__name__ == "LlavaLlamaForCausalLM"
        prompt = build_prompt(QUESTION, RELEASED_LAYOUTS[repo_id].conv_mode)
        inputs = {"input_ids": tokenizer_image_token(prompt, tokenizer, return_tensors="pt")[None],
                  "images": process_images([image], processor, model.config), "image_sizes": [image.size]}
    with torch.no_grad():
        ours, theirs = model(**inputs).logits, reference.eval()(**inputs).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_it_loads_by_hub_id_from_an_offline_cache(released, hub_cache):
    repo_id, path, (_, local_model, _, _) = released
    install_in_hub_cache(repo_id, path, hub_cache[0])
    tokenizer, model, processor, _ = load_pretrained_model(repo_id, None, device="cpu")
    assert processor is not None and type(tokenizer) is type(released[2][0])
    expected = local_model.state_dict()
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    assert all(torch.equal(state[name], expected[name]) for name in expected)


# -- the eval worker ------------------------------------------------------------------------------------------


def worker_flags(repo_id):
    if repo_id in QWEN_IDS:  # the chat template makes the prompt; DART keeps half the image tokens
        return ["--sparse", "--reduction_ratio", "0.5"]
    flags = ["--conv-mode", RELEASED_LAYOUTS[repo_id].conv_mode, "--sparse", "--pruned_layer", "2",
             "--pivot_image_token", "4", "--pivot_text_token", "4", "--reduction_ratio", "0.778",
             "--max_num_trunction", "64"]
    if "v1.6" in repo_id:  # anyres: the DART release's budget for LLaVA-NeXT's image tokens
        flags += ["--retain_token_num_for_llava_next", "320"]
    return flags


@pytest.fixture(scope="module")
def worker_run(checkpoints, image, tmp_path_factory):
    """worker_run(repo_id, answers) -> the worker's argv for two questions on two small images."""
    root = tmp_path_factory.mktemp("questions")
    images = root / "images"
    images.mkdir()
    lines = []
    for i, size in enumerate([(56, 40), (40, 64)]):
        image.resize(size).save(images / f"{i}.png")
        lines.append(json.dumps({"question_id": i, "image": f"{i}.png", "text": f"{QUESTION} Answer in one word."}))
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n")

    def argv(repo_id, answers):
        return ["--model-path", str(checkpoints[repo_id]), "--question-file", str(root / "questions.jsonl"),
                "--image-folder", str(images), "--answers-file", str(answers), "--temperature", "0",
                "--max_new_tokens", "3", "--device", "cpu", *worker_flags(repo_id)]

    return argv


@pytest.fixture(scope="module")
def command_line_answers(worker_run, tmp_path_factory):
    """The worker run on every layout by a fresh process that is offline through its environment alone; one
    process for all of them, since importing torch and transformers costs more than the runs."""
    root = tmp_path_factory.mktemp("command_line")
    runs = {repo_id: worker_run(repo_id, root / f"{short(repo_id)}.jsonl") for repo_id in ORIGINAL_IDS}
    (root / "runs.json").write_text(json.dumps(list(runs.values())))
    script = ("import json, sys\nfrom llava.eval.workers import model_vqa_loader\n"
              "for argv in json.load(open(sys.argv[1])):\n    assert model_vqa_loader.main(argv) == 0, argv\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # HF_HUB_CACHE / HF_HUB_OFFLINE: the module's offline cache
    done = subprocess.run([sys.executable, "-c", script, str(root / "runs.json")], env=env, capture_output=True,
                          text=True, timeout=hang_timeout(1200))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return {repo_id: root / f"{short(repo_id)}.jsonl" for repo_id in ORIGINAL_IDS}


def test_temperature_zero_is_greedy_although_the_release_turns_sampling_on(checkpoints, worker_run, tmp_path):
    """Qwen3-VL's generation_config.json samples (temperature 0.7, top-k 20); the worker at --temperature 0 must
    decode greedily whatever the seed: the answers equal greedy decoding's."""
    repo_id = "Qwen/Qwen3-VL-8B-Instruct"
    config = json.loads((checkpoints[repo_id] / "generation_config.json").read_text())
    assert config["do_sample"] is True and config["temperature"] > 0
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        assert model_vqa_loader.main(worker_run(repo_id, tmp_path / f"{seed}.jsonl") + ["--max_new_tokens", "6"]) == 0
        runs.append([line["text"] for line in read_answers(tmp_path / f"{seed}.jsonl")])
    assert runs[0] == runs[1]
    tokenizer, model, processor, _ = load_pretrained_model(str(checkpoints[repo_id]), None, device="cpu")
    argv = worker_run(repo_id, tmp_path / "unused.jsonl")
    questions = argv[argv.index("--question-file") + 1]
    images = argv[argv.index("--image-folder") + 1]
    first = json.loads(open(questions).readline())
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": first["text"]}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(f"{images}/{first['image']}").convert("RGB")],
                       return_tensors="pt")
    with torch.no_grad():
        record = PruningRecord(dart_config=make_dart_config(reduction_ratio=0.5))  # the worker's --sparse flags
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False, top_k=None, top_p=None, temperature=None,
                             repetition_penalty=None, pruning_record=record)
    greedy = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert runs[0][0] == greedy


def read_answers(path):
    """The answer lines without `answer_id`, which is random per run."""
    return [{k: v for k, v in json.loads(line).items() if k != "answer_id"} for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_the_worker_writes_the_same_answers_file_in_another_process(released, worker_run, command_line_answers,
                                                                     tmp_path):
    repo_id = released[0]
    assert model_vqa_loader.main(worker_run(repo_id, tmp_path / "answers.jsonl")) == 0
    ours, theirs = read_answers(tmp_path / "answers.jsonl"), read_answers(command_line_answers[repo_id])
    assert ours == theirs
    assert [line["question_id"] for line in ours] == [0, 1]
    # DART ran: a random tiny model's answers may be empty, its pruning may not.
    assert all(0 < line["metadata"]["image_tokens_kept"] < line["metadata"]["image_tokens"] for line in ours)


# -- the command line: tiny checkpoints to try a family without its weights --------------------------------


def test_the_command_lists_every_layout(capsys):
    assert released_layouts.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(RELEASED_LAYOUTS)


def test_the_command_writes_a_qwen_checkpoint_that_loads(tmp_path, capsys):
    out = tmp_path / "qwen2-vl-tiny"
    assert released_layouts.main(["--repo", "Qwen/Qwen2-VL-7B-Instruct", "--out", str(out), "--seed", "3"]) == 0
    assert f"to {out}" in capsys.readouterr().out
    tokenizer, model, processor, _ = load_pretrained_model(str(out), None, device="cpu")
    assert model.config.model_type == "qwen2_vl" and processor is not None
    # The seed chose the weights: the library's own build with that seed holds the same tensors.
    reference = build_released_checkpoint("Qwen/Qwen2-VL-7B-Instruct", tmp_path / "reference", seed=3)
    on_disk, expected = read_checkpoint_tensors(out), read_checkpoint_tensors(reference)
    assert sorted(on_disk) == sorted(expected) and all(torch.equal(on_disk[k], expected[k]) for k in expected)


def test_the_command_writes_a_llava_checkpoint_with_its_tower_in_a_cache_of_its_own(tmp_path, capsys, monkeypatch):
    users_cache = tmp_path / "users-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(users_cache))
    out = tmp_path / "llava-v1.5-7b"
    assert released_layouts.main(["--repo", "liuhaotian/llava-v1.5-7b", "--out", str(out)]) == 0
    cache = tmp_path / "llava-v1.5-7b-hub-cache"
    assert f"run with HF_HUB_CACHE={cache} HF_HUB_OFFLINE=1" in capsys.readouterr().out
    assert not users_cache.exists()  # the look-alike tower never lands in the user's own cache
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer, model, image_processor, _ = load_pretrained_model(str(out), None, device="cpu")  # strict: all weights
    assert model.get_vision_tower().hidden_size == 32  # the tiny tower, from that cache


def test_the_command_needs_a_folder_to_write(capsys):
    with pytest.raises(SystemExit):
        released_layouts.main(["--repo", "Qwen/Qwen2-VL-7B-Instruct"])
    assert "--repo needs --out" in capsys.readouterr().err
