"""Training: label masking, a two-stage smoke run on the CPU, a text-only stage before them, loss going down,
LoRA round trip."""

import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPVisionModel

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.model.builder import load_pretrained_model
from llava.model.tiny_checkpoint import build_tiny_base_llm
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments
from llava.train.preprocess import move_image_token_first, tokenize_conversation
from llava.train.train import run


@pytest.fixture(scope="module")
def tokenizer(tiny_ckpt):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_ckpt), use_fast=False)


def labelled_segments(labels):
    """Runs of labelled (not IGNORE_INDEX) token ids."""
    segments, current = [], []
    for token in labels.tolist():
        if token == IGNORE_INDEX:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(token)
    return segments + ([current] if current else [])


def test_v1_labels_cover_exactly_the_answers(tokenizer):
    conversations = move_image_token_first([
        {"from": "human", "value": "What colour is the circle?\n<image>"},
        {"from": "gpt", "value": "red"},
        {"from": "human", "value": "How many shapes are there?"},
        {"from": "gpt", "value": "two shapes"},
    ])
    assert conversations[0]["value"].startswith("<image>\n")
    item = tokenize_conversation(conversations, tokenizer, "v1", has_image=True)
    ids, labels = item["input_ids"], item["labels"]
    assert (ids == IMAGE_TOKEN_INDEX).sum() == 1 and labels[0] == IGNORE_INDEX
    segments = labelled_segments(labels)
    decoded = [tokenizer.decode(s, skip_special_tokens=False).strip() for s in segments]
    assert decoded == ["red</s>", "two shapes</s>"]
    # the labels are the input ids themselves where set
    mask = labels != IGNORE_INDEX
    assert torch.equal(labels[mask], ids[mask])


def test_plain_labels_cover_the_caption_and_newline(tokenizer):
    conversations = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a red circle."}]
    item = tokenize_conversation(conversations, tokenizer, "plain", has_image=True)
    assert item["input_ids"][:2].tolist() == [tokenizer.bos_token_id, IMAGE_TOKEN_INDEX]
    assert item["labels"][:2].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert tokenizer.decode(item["labels"][2:]) == "a red circle.\n"


def test_train_on_prompt_labels_all_text_but_not_the_image(tokenizer):
    conversations = move_image_token_first([
        {"from": "human", "value": "<image>\nIs there a red circle?"},
        {"from": "gpt", "value": "yes"},
    ])
    answers_only = tokenize_conversation(conversations, tokenizer, "v1", has_image=True)
    item = tokenize_conversation(conversations, tokenizer, "v1", has_image=True, train_on_prompt=True)
    ids, labels = item["input_ids"], item["labels"]
    assert torch.equal(ids, answers_only["input_ids"])
    image_at = (ids == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist()
    assert len(image_at) == 1 and labels[image_at[0]] == IGNORE_INDEX
    text = torch.ones_like(ids, dtype=torch.bool)
    text[image_at[0]] = False
    assert torch.equal(labels[text], ids[text])
    assert "Is there a red circle? ASSISTANT: yes</s>" in tokenizer.decode(labels[image_at[0] + 1 :])


def test_text_only_v1_sample(tokenizer):
    conversations = [{"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "yes"}]
    item = tokenize_conversation(conversations, tokenizer, "v1", has_image=False)
    assert [tokenizer.decode(s).strip() for s in labelled_segments(item["labels"])] == ["yes</s>"]


def test_turns_must_alternate(tokenizer):
    with pytest.raises(ValueError, match="alternate"):
        tokenize_conversation(
            [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}], tokenizer, "v1", has_image=False
        )


def write_dataset(root, stage):
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, (name, rgb) in enumerate([("red", (220, 20, 20)), ("blue", (20, 20, 220))]):
        Image.new("RGB", (336, 336), rgb).save(images / f"{name}.png")
        if stage == 1:
            turns = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": f"a {name} image."}]
        else:
            turns = [{"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": name}]
        samples.append({"id": str(i), "image": f"{name}.png", "conversations": turns})
    path = root / f"stage{stage}.json"
    path.write_text(json.dumps(samples))
    return path


def args_for(tmp_path, base, tower, data, out, version, **training):
    model = ModelArguments(model_name_or_path=str(base), version=version, vision_tower=tower and str(tower),
                           mm_vision_select_layer=-2, mm_projector_type="mlp2x_gelu", mm_use_im_patch_token=False,
                           tune_mm_mlp_adapter=training.pop("tune_mm_mlp_adapter", False),
                           unfreeze_mm_vision_tower=training.pop("unfreeze_mm_vision_tower", False),
                           pretrain_mm_mlp_adapter=training.pop("pretrain_mm_mlp_adapter", None))
    data_args = DataArguments(data_path=str(data), image_folder=str(tmp_path / "data" / "images"), image_aspect_ratio="pad")
    defaults = dict(output_dir=str(out), use_cpu=True, per_device_train_batch_size=2, learning_rate=1e-3,
                    max_steps=2, logging_steps=1, save_strategy="no", report_to=[], model_max_length=2048, seed=0,
                    dataloader_num_workers=0)
    return model, data_args, TrainingArguments(**{**defaults, **training})


@pytest.fixture(scope="module")
def base_llm(tmp_path_factory):
    return build_tiny_base_llm(tmp_path_factory.mktemp("base") / "llm", seed=0)


def test_two_stage_smoke_run_writes_loadable_checkpoints(tmp_path, tiny_ckpt, base_llm):
    tower = tiny_ckpt / "vision_tower"
    stage1 = run(*args_for(tmp_path, base_llm, tower, write_dataset(tmp_path / "data", 1), tmp_path / "s1", "plain",
                           tune_mm_mlp_adapter=True))
    assert (tmp_path / "s1" / "mm_projector.bin").is_file() and stage1.state.global_step == 2
    saved = torch.load(tmp_path / "s1" / "mm_projector.bin", weights_only=True)
    assert set(saved) == {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}

    run(*args_for(tmp_path, base_llm, tower, write_dataset(tmp_path / "data", 2), tmp_path / "s2", "v1",
                  pretrain_mm_mlp_adapter=str(tmp_path / "s1" / "mm_projector.bin")))
    tokenizer, model, processor, _ = load_pretrained_model(str(tmp_path / "s2"), None, device="cpu")
    saved_keys = load_file(tmp_path / "s2" / "model.safetensors").keys()
    assert "model.mm_projector.0.weight" in saved_keys and "lm_head.weight" in saved_keys
    assert not any("vision_tower" in k for k in saved_keys)  # LLaVA layout: the config names the tower
    image = torch.zeros(1, 3, 336, 336)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 5, 6]]), images=image)
    assert out.logits.shape[1] == 3 + 576


def test_text_only_stage_then_image_stage(tmp_path, tiny_ckpt, base_llm):
    """The tiny default's stage 0: the LLM alone on text-only conversations, then stage 1 adds the vision
    modules to its output, as LLaVA's stage 1 does to a released LLM."""
    text = tmp_path / "text.json"
    text.write_text(json.dumps([
        {"id": str(i), "conversations": [{"from": "human", "value": f"The image shows a {c} circle.\nIs it {c}?"},
                                         {"from": "gpt", "value": "yes"}]}
        for i, c in enumerate(("red", "blue"))
    ]))
    stage0 = run(*args_for(tmp_path, base_llm, None, text, tmp_path / "s0", "v1"))
    assert stage0.state.global_step == 2
    config = json.loads((tmp_path / "s0" / "config.json").read_text())
    assert "mm_vision_tower" not in config
    changed = load_file(tmp_path / "s0" / "model.safetensors")["lm_head.weight"]
    assert not torch.equal(changed, load_file(base_llm / "model.safetensors")["lm_head.weight"])

    run(*args_for(tmp_path, tmp_path / "s0", tiny_ckpt / "vision_tower", write_dataset(tmp_path / "data", 1),
                  tmp_path / "s1", "plain", learning_rate=5e-4, mm_projector_lr=2e-3))
    _, model, _, _ = load_pretrained_model(str(tmp_path / "s1"), None, device="cpu")
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 5, 6]]), images=torch.zeros(1, 3, 336, 336))
    assert out.logits.shape[1] == 3 + 576


def test_projector_only_training_without_a_tower_is_refused(tmp_path, base_llm):
    with pytest.raises(ValueError, match="needs --vision_tower"):
        run(*args_for(tmp_path, base_llm, None, tmp_path / "unused.json", tmp_path / "out", "v1",
                      tune_mm_mlp_adapter=True))


def test_loss_decreases_on_a_repeated_batch(tmp_path, tiny_ckpt, base_llm):
    args = args_for(tmp_path, base_llm, tiny_ckpt / "vision_tower", write_dataset(tmp_path / "data", 2),
                    tmp_path / "out", "v1", max_steps=12, learning_rate=3e-3)
    trainer = run(*args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12 and losses[-1] < 0.75 * losses[0]


def test_lora_checkpoint_loads_through_model_base_and_matches_merged(tmp_path, tiny_ckpt, base_llm):
    model_args, data_args, training_args = args_for(
        tmp_path, base_llm, tiny_ckpt / "vision_tower", write_dataset(tmp_path / "data", 2), tmp_path / "lora", "v1",
        lora_enable=True, lora_r=4, lora_alpha=8, max_steps=3, learning_rate=1e-2,
    )
    trainer = run(model_args, data_args, training_args)
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert (tmp_path / "lora" / "non_lora_trainables.bin").is_file()
    merged = trainer.model.merge_and_unload().eval()
    _, loaded, _, _ = load_pretrained_model(str(tmp_path / "lora"), str(base_llm), device="cpu")
    ids = torch.tensor([[1, 20, IMAGE_TOKEN_INDEX, 30, 40]])
    image = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, images=image).logits, merged(input_ids=ids, images=image).logits,
                                   rtol=0, atol=1e-5)


def test_a_checkpoint_trained_with_a_relative_local_tower_loads_from_anywhere(tmp_path, tiny_ckpt, base_llm,
                                                                             monkeypatch):
    """The tower given as a path relative to the training run's directory: the final checkpoint carries a copy
    and names it relative to itself, so it loads from another directory, also after being moved."""
    work = tmp_path / "work"
    shutil.copytree(tiny_ckpt / "vision_tower", work / "towers" / "clip")
    monkeypatch.chdir(work)
    run(*args_for(tmp_path, base_llm, "towers/clip", write_dataset(tmp_path / "data", 2), tmp_path / "out", "v1"))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["mm_vision_tower"] == "vision_tower"
    moved = tmp_path / "elsewhere" / "ckpt"
    shutil.move(tmp_path / "out", moved)
    monkeypatch.chdir(tmp_path)
    _, model, _, _ = load_pretrained_model(str(moved), None, device="cpu")
    tower = model.get_vision_tower().vision_tower
    reference = CLIPVisionModel.from_pretrained(work / "towers" / "clip")
    assert all(torch.equal(a, b) for a, b in zip(tower.state_dict().values(), reference.state_dict().values()))


TOWER_KEY = "model.vision_tower.vision_tower.encoder.layers.0.self_attn.q_proj.weight"


def test_an_unfrozen_tower_trains_at_its_own_rate_is_saved_in_the_checkpoint_and_packaged(tmp_path, tiny_ckpt,
                                                                                         tiny_script):
    """--unfreeze_mm_vision_tower (LLaVA-NeXT's flag): the tower's parameters train, in their own optimizer group at
    --mm_vision_tower_lr; the checkpoint carries them as the released LLaVA-1.6 ones do (config
    unfreeze_mm_vision_tower, tensors under model.vision_tower.vision_tower.*) and loads with them; a later run
    without the flag keeps them; the packager moves them into vision_tower/."""
    original = load_file(tiny_ckpt / "vision_tower" / "model.safetensors")
    data = write_dataset(tmp_path / "data", 2)
    trainer = run(*args_for(tmp_path, tiny_ckpt, tiny_ckpt / "vision_tower", data, tmp_path / "out", "v1",
                            unfreeze_mm_vision_tower=True, mm_vision_tower_lr=2e-3, learning_rate=1e-3))
    tower_params = {id(p) for n, p in trainer.model.named_parameters() if "vision_tower" in n}
    groups = [g for g in trainer.optimizer.param_groups if any(id(p) in tower_params for p in g["params"])]
    assert groups and all(g["initial_lr"] == 2e-3 and {id(p) for p in g["params"]} <= tower_params for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(tower_params)

    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["unfreeze_mm_vision_tower"] is True and config["mm_vision_tower_lr"] == 2e-3
    saved = load_file(tmp_path / "out" / "model.safetensors")
    trained = saved[TOWER_KEY]
    assert not torch.equal(trained, original["vision_model.encoder.layers.0.self_attn.q_proj.weight"])
    _, model, _, _ = load_pretrained_model(str(tmp_path / "out"), None, device="cpu")
    assert torch.equal(dict(model.named_parameters())[TOWER_KEY], trained)

    run(*args_for(tmp_path, tmp_path / "out", tiny_ckpt / "vision_tower", data, tmp_path / "frozen", "v1"))
    assert json.loads((tmp_path / "frozen" / "config.json").read_text())["unfreeze_mm_vision_tower"] is True
    assert torch.equal(load_file(tmp_path / "frozen" / "model.safetensors")[TOWER_KEY], trained)

    packaged = tmp_path / "packaged"
    tiny_script("package_checkpoint").package(tmp_path / "out", tiny_ckpt / "vision_tower", packaged, "float32")
    assert json.loads((packaged / "config.json").read_text())["unfreeze_mm_vision_tower"] is False
    assert not any("vision_tower" in k for k in load_file(packaged / "model.safetensors"))
    tower_file = load_file(packaged / "vision_tower" / "model.safetensors")
    assert torch.equal(tower_file["vision_model.encoder.layers.0.self_attn.q_proj.weight"], trained)
    _, repackaged, _, _ = load_pretrained_model(str(packaged), None, device="cpu")
    image = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(repackaged(input_ids=ids, images=image).logits,
                                   model(input_ids=ids, images=image).logits, rtol=0, atol=1e-5)


def test_a_tower_learning_rate_without_unfreezing_is_refused(tmp_path, tiny_ckpt):
    with pytest.raises(ValueError, match="add --unfreeze_mm_vision_tower"):
        run(*args_for(tmp_path, tiny_ckpt, tiny_ckpt / "vision_tower", write_dataset(tmp_path / "data", 2),
                      tmp_path / "out", "v1", mm_vision_tower_lr=1e-4))


def test_a_pruned_training_step_takes_the_loss_over_exactly_the_kept_positions(tiny_ckpt):
    """With DART on, the loss is the next-token cross-entropy of the kept sequence: labels gathered at the kept
    positions (image tokens carry none), computed here by hand; it back-propagates into the layers after K."""
    from llava.model import PruningRecord
    from llava.model.pruning import make_dart_config

    _, model, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    model.train()
    ids = torch.tensor([[1, 20, IMAGE_TOKEN_INDEX, 30, 40, 50, 60, 70]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 40, 50, 60, 70]])
    images = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    record = PruningRecord(dart_config=make_dart_config(max_num_trunction=16))
    out = model(input_ids=ids, images=images, labels=labels, pruning_record=record)
    keep = record.kept_positions(0)
    assert out.logits.shape[1] == keep.numel() == 2 + (4 + 16) + 5
    spliced = torch.cat([labels[0, :2], torch.full((576,), IGNORE_INDEX), labels[0, 3:]])  # the image's 576 rows
    kept_labels = spliced[keep]
    expected = torch.nn.functional.cross_entropy(out.logits[0, :-1].float(), kept_labels[1:], ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    last = model.get_model().layers[-1].mlp.down_proj.weight.grad
    assert last is not None and last.abs().sum() > 0


def test_pruning_aware_fine_tuning_trains_with_the_flags_and_saves_a_config_that_does_not_prune(
        tmp_path, tiny_ckpt, base_llm):
    from llava.train.train import parse_train_args

    data = write_dataset(tmp_path / "data", 2)
    model_args, data_args, training_args = args_for(tmp_path, base_llm, tiny_ckpt / "vision_tower", data,
                                                    tmp_path / "out", "v1")
    argv = ["--model_name_or_path", str(base_llm), "--output_dir", str(tmp_path / "out"), "--sparse",
            "--pruning_method", "dart", "--max_num_trunction", "32", "--pruned_layer", "1"]
    *_, pruning = parse_train_args(argv)
    assert pruning["method"] == "dart" and pruning["max_num_trunction"] == 32 and pruning["K"] == 1
    with pytest.raises(ValueError, match="--no_such_flag"):  # the Hugging Face parser names unused arguments
        parse_train_args(argv + ["--no_such_flag", "1"])

    seen = []
    from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM

    original = LlavaLlamaForCausalLM.forward

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append(out.logits.shape[1])
        return out

    LlavaLlamaForCausalLM.forward = spy
    try:
        run(model_args, data_args, training_args, pruning=pruning)
    finally:
        LlavaLlamaForCausalLM.forward = original
    prompt = seen[0] - (4 + 32)  # every training forward saw the kept sequence: text + 36 image tokens
    assert seen and all(length == prompt + 36 for length in seen) and prompt < 576
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config.get("DART_config") is None and config["trained_with_pruning"]["max_num_trunction"] == 32
    moved = load_file(tmp_path / "out" / "model.safetensors")["model.layers.1.mlp.down_proj.weight"]
    assert not torch.equal(moved, load_file(base_llm / "model.safetensors")["model.layers.1.mlp.down_proj.weight"])


def test_llava_1_6_training_preprocesses_anyres_crops_and_trains_the_row_separator(tmp_path, tiny_ckpt, base_llm):
    """anyres + spatial_unpad from a plain LLM: each sample's crops (the global view and a grid chosen from
    --image_grid_pinpoints) and its size reach the splice, the image_newline embedding trains, and the saved
    checkpoint splices a wide image as LLaVA-1.6 does."""
    import dataclasses

    data = write_dataset(tmp_path / "data", 2)
    model_args, data_args, training_args = args_for(tmp_path, base_llm, tiny_ckpt / "vision_tower", data,
                                                    tmp_path / "out", "v1", max_steps=2)
    model_args = dataclasses.replace(model_args, mm_patch_merge_type="spatial_unpad",
                                     image_grid_pinpoints="[[336, 672], [672, 336], [672, 672]]")
    data_args = dataclasses.replace(data_args, image_aspect_ratio="anyres")
    seen = []
    from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM

    original = LlavaLlamaForCausalLM.forward

    def spy(self, *args, **kwargs):
        if kwargs.get("images") is not None:
            seen.append(([tuple(i.shape) for i in kwargs["images"]], kwargs.get("image_sizes"),
                         self.get_model().image_newline.detach().clone()))
        return original(self, *args, **kwargs)

    LlavaLlamaForCausalLM.forward = spy
    try:
        run(model_args, data_args, training_args)
    finally:
        LlavaLlamaForCausalLM.forward = original
    shapes, sizes, first_newline = seen[0]
    # a square 336 image: the first pinpoint, 336 x 672, wastes least: the global view + a 1 x 2 grid
    assert shapes == [(3, 3, 336, 336)] * 2 and sizes == [(336, 336)] * 2
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["image_aspect_ratio"] == "anyres" and config["mm_patch_merge_type"] == "spatial_unpad"
    assert config["image_grid_pinpoints"] == [[336, 672], [672, 336], [672, 672]]
    _, model, processor, _ = load_pretrained_model(str(tmp_path / "out"), None, device="cpu")
    assert not torch.equal(model.get_model().image_newline.detach(), first_newline)  # it trained
    from llava.mm_utils import process_images

    wide = Image.new("RGB", (672, 336), (200, 30, 30))
    pixels = process_images([wide], processor, model.config)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 5, 6]]), images=pixels, image_sizes=[wide.size])
    assert out.logits.shape[1] == 3 + model.image_token_count(pixels[0].shape[0], wide.size) > 3 + 576


def test_bad_grid_pinpoints_are_refused_clearly(tmp_path, tiny_ckpt, base_llm):
    import dataclasses

    model_args, data_args, training_args = args_for(tmp_path, base_llm, tiny_ckpt / "vision_tower",
                                                    write_dataset(tmp_path / "data", 2), tmp_path / "out", "v1")
    data_args = dataclasses.replace(data_args, image_aspect_ratio="anyres")
    with pytest.raises(ValueError, match="needs --image_grid_pinpoints"):
        run(model_args, data_args, training_args)
    model_args = dataclasses.replace(model_args, image_grid_pinpoints="[[336, 672], 12]")
    with pytest.raises(ValueError, match="must be a list of \\[width, height\\] pairs"):
        run(model_args, data_args, training_args)
