"""load_pretrained_model on checkpoints written in the original LLaVA on-disk format."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPImageProcessorPil

from llava.model import LlavaLlamaForCausalLM
from llava.model.builder import load_pretrained_model
from llava.model.tiny_checkpoint import build_tiny_base_llm, build_tiny_checkpoint


def logits(model, image):
    ids = torch.tensor([[1, 20, 30, -200, 40, 50, 60]])
    with torch.no_grad():
        return model(input_ids=ids, images=image).logits


def test_full_checkpoint_loads_every_weight(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative mm_vision_tower must resolve against the checkpoint, not the cwd
    tokenizer, model, processor, context_len = load_pretrained_model(str(tiny_ckpt), None, "llava-tiny", device="cpu")
    assert isinstance(model, LlavaLlamaForCausalLM) and not model.training
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert isinstance(processor, CLIPImageProcessorPil) and context_len == 2048
    assert tokenizer.bos_token_id == 1 and tokenizer.eos_token_id == 2
    on_disk = load_file(tiny_ckpt / "model.safetensors")
    state = model.state_dict()
    for name, tensor in on_disk.items():
        assert torch.equal(state[name], tensor), name
    tower = load_file(tiny_ckpt / "vision_tower" / "model.safetensors")
    loaded_tower = model.get_vision_tower().vision_tower
    assert torch.equal(
        loaded_tower.embeddings.patch_embedding.weight,  # transformers 5 flattens the module tree
        tower["vision_model.embeddings.patch_embedding.weight"],
    )
    assert model.get_vision_tower().num_patches == 576


def test_projector_only_checkpoint_with_model_base_equals_full(tiny_ckpt, tmp_path):
    projector_dir = build_tiny_checkpoint(tmp_path / "stage1", seed=0, layout="projector_only")
    base_dir = build_tiny_base_llm(tmp_path / "base", seed=0)
    image = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    _, full, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    _, combined, _, _ = load_pretrained_model(str(projector_dir), str(base_dir), device="cpu")
    torch.testing.assert_close(logits(combined, image), logits(full, image), rtol=0, atol=0)


def test_projector_bin_is_used_when_no_safetensors(tiny_ckpt, tmp_path):
    projector_dir = build_tiny_checkpoint(tmp_path / "stage1", seed=0, layout="projector_only")
    (projector_dir / "mm_projector.safetensors").unlink()
    base_dir = build_tiny_base_llm(tmp_path / "base", seed=0)
    _, model, _, _ = load_pretrained_model(str(projector_dir), str(base_dir), device="cpu")
    on_disk = torch.load(projector_dir / "mm_projector.bin", weights_only=True)
    assert torch.equal(model.get_model().mm_projector[0].weight, on_disk["model.mm_projector.0.weight"])


def test_released_llava_model_type_is_accepted(tiny_ckpt, tmp_path):
    """liuhaotian/llava-v1.5-* configs say model_type "llava" (older LLaVA code)."""
    copy = tmp_path / "llava-v1.5-tiny"
    shutil.copytree(tiny_ckpt, copy)
    config = json.loads((copy / "config.json").read_text())
    config["model_type"] = "llava"
    (copy / "config.json").write_text(json.dumps(config))
    _, model, _, _ = load_pretrained_model(str(copy), None, device="cpu")
    assert isinstance(model, LlavaLlamaForCausalLM)


def test_cuda_request_falls_back_to_cpu(tiny_ckpt, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, model, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cuda")
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert "CUDA is not available" in caplog.text


def test_missing_path_and_missing_base_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained_model(str(tmp_path / "nope"), None, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained_model(str(tmp_path / "empty"), None, device="cpu")
    projector_dir = build_tiny_checkpoint(tmp_path / "stage1", seed=0, layout="projector_only")
    with pytest.raises(ValueError, match="--model-base"):
        load_pretrained_model(str(projector_dir), None, device="cpu")


def test_quantized_loading_needs_cuda(tiny_ckpt):
    with pytest.raises(ValueError, match="need a CUDA device"):
        load_pretrained_model(str(tiny_ckpt), None, load_4bit=True, device="cpu")


def test_unreachable_hub_id_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="hub is unreachable with no cached copy"):
        load_pretrained_model("liuhaotian/llava-v1.5-7b", None, device="cpu")


def test_lora_checkpoint_with_model_base_equals_merged_weights(tiny_ckpt, tmp_path):
    """LLaVA's LoRA layout: adapter files + non_lora_trainables.bin (projector) + the LLaVA config."""
    from peft import LoraConfig, get_peft_model

    base_dir = build_tiny_base_llm(tmp_path / "base", seed=0)
    _, model, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    # Language-model layers only, as LLaVA's training targets them (the CLIP tower has q_proj/v_proj too).
    targets = r".*model\.layers\.\d+\.self_attn\.(q_proj|v_proj)"
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.1)
        projector = peft_model.base_model.model.model.mm_projector
        for param in projector.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.1)
    lora_dir = tmp_path / "llava-lora"
    peft_model.save_pretrained(lora_dir)
    torch.save(
        {f"base_model.model.model.mm_projector.{k}": v.clone() for k, v in projector.state_dict().items()},
        lora_dir / "non_lora_trainables.bin",
    )
    shutil.copy(tiny_ckpt / "config.json", lora_dir / "config.json")
    shutil.copytree(tiny_ckpt / "vision_tower", lora_dir / "vision_tower")
    merged = peft_model.merge_and_unload()

    _, loaded, _, _ = load_pretrained_model(str(lora_dir), str(base_dir), device="cpu")
    image = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logits(loaded, image), logits(merged, image), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="LoRA checkpoint: pass the base model"):
        load_pretrained_model(str(lora_dir), None, device="cpu")


def test_customized_and_overwrite_config_set_config_attributes_before_the_model_is_built(tiny_ckpt, tmp_path):
    """LLaVA-NeXT's loader arguments, as lmms-eval's own `llava` passes them: a JSON file and a dict of config
    attributes (the dict wins)."""
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"DART_config": {"K": 3}, "marker": "file"}))
    _, model, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", multimodal=True,
                                           customized_config=str(overrides), overwrite_config={"marker": "dict"})
    assert model.config.DART_config == {"K": 3} and model.config.marker == "dict"
    overrides.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        load_pretrained_model(str(tiny_ckpt), None, device="cpu", customized_config=str(overrides))
    with pytest.raises(ValueError, match="not-there.json: not a readable JSON file"):
        load_pretrained_model(str(tiny_ckpt), None, device="cpu", customized_config=str(tmp_path / "not-there.json"))


@pytest.mark.parametrize("flag", ["output_attentions", "output_hidden_states"])
def test_asking_for_attentions_or_hidden_states_leaves_later_calls_unchanged(tiny_ckpt, flag):
    """transformers hooks a model for output capturing on its first capturing call; hooking the vision tower a
    second time would double its hidden-state tuple and move the selected layer, so that every call after
    one with output_attentions gave other image features."""
    from PIL import Image

    from llava.mm_utils import process_images, tokenizer_image_token
    from llava.model import PruningRecord

    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation="eager")
    ids = tokenizer_image_token("USER: <image>\nWhat is it? ASSISTANT:", tokenizer, return_tensors="pt")[None]
    images = process_images([Image.new("RGB", (336, 336), (200, 30, 30))], processor, model.config)

    def logits(**kwargs):
        with torch.no_grad():
            return model(ids, images=images, pruning_record=PruningRecord(dart_config=None), **kwargs).logits

    before = logits()
    assert torch.equal(logits(**{flag: True}), before)
    assert torch.equal(logits(), before)


def release_layout(tmp_path, tiny_ckpt, with_tower=True, extra=None):
    """The tiny checkpoint laid out as the released llava-v1.6 ones: model_type "llava",
    unfreeze_mm_vision_tower, and the fine-tuned tower inside model.safetensors under
    model.vision_tower.vision_tower.vision_model.* (transformers 4's names). That tower is the directory's
    perturbed, so the two give different features. Returns (path, the perturbed tower tensors)."""
    path = tmp_path / "llava-v1.6-layout"
    shutil.copytree(tiny_ckpt, path)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="llava", unfreeze_mm_vision_tower=True)
    (path / "config.json").write_text(json.dumps(config))
    state = load_file(path / "model.safetensors")
    g = torch.Generator().manual_seed(5)
    tuned = {name: tensor + 0.05 * torch.randn(tensor.shape, generator=g)
             for name, tensor in load_file(path / "vision_tower" / "model.safetensors").items()
             if name.startswith("vision_model.")}
    if with_tower:
        state.update({f"model.vision_tower.vision_tower.{name}": tensor for name, tensor in tuned.items()})
    state.update(extra or {})
    from safetensors.torch import save_file

    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path, tuned


def test_a_released_llava_1_6_layout_uses_the_tower_inside_the_checkpoint(tmp_path, tiny_ckpt, tiny_image):
    path, tuned = release_layout(tmp_path, tiny_ckpt)
    _, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    tower = model.get_vision_tower().vision_tower
    patch = tuned["vision_model.embeddings.patch_embedding.weight"]
    assert torch.equal(tower.embeddings.patch_embedding.weight, patch)
    state = tower.state_dict()
    assert len(state) == len(tuned)  # every tower tensor of the checkpoint found its place
    for name, tensor in tuned.items():
        assert torch.equal(state[name.removeprefix("vision_model.")], tensor), name

    _, plain, _, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    pixels = process_pixels(processor, tiny_image)
    with torch.no_grad():
        ours, directory = model.get_vision_tower()(pixels), plain.get_vision_tower()(pixels)
    assert not torch.allclose(ours, directory, atol=1e-3)  # the directory's tower would answer otherwise
    from transformers import CLIPVisionModel

    reference = CLIPVisionModel.from_pretrained(str(tiny_ckpt / "vision_tower"))
    reference.load_state_dict({name.removeprefix("vision_model."): t for name, t in tuned.items()})
    with torch.no_grad():
        expected = reference(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_a_release_layout_without_its_tower_or_with_stray_tensors_says_so(tmp_path, tiny_ckpt):
    path, _ = release_layout(tmp_path, tiny_ckpt, with_tower=False)
    with pytest.raises(ValueError, match="unfreeze_mm_vision_tower.*tensors are missing"):
        load_pretrained_model(str(path), None, device="cpu")
    shutil.rmtree(path)
    path, _ = release_layout(tmp_path, tiny_ckpt, extra={"model.stray.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"1 tensor\(s\) of the checkpoint have no place in the model: model\.stray"):
        load_pretrained_model(str(path), None, device="cpu")


def process_pixels(processor, image):
    return processor(images=image, return_tensors="pt")["pixel_values"]
