"""LLaVA-1.6 on Mistral (`llava_mistral`): liuhaotian/llava-v1.6-mistral-7b's released layout loads with every
tensor in place, runs exactly as the LLaMA class on the same weights (Mistral with no sliding window is LLaMA's
architecture) and as transformers' Mistral, prunes through the same engine hook with every method, and a sliding
window is masked as transformers does while pruning with one is refused."""

import contextlib
import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig, MistralForCausalLM
from transformers.cache_utils import DynamicCache

from llava.eval.core.prompting import build_prompt, choose_conv_mode, infer_conv_mode
from llava.mm_utils import process_images, tokenizer_image_token
from llava.model import LlavaConfig, LlavaLlamaForCausalLM, LlavaMistralConfig, LlavaMistralForCausalLM, PruningRecord
from llava.model.builder import load_pretrained_model, read_config
from llava.model.language_model.families import llava_config_for_base
from llava.model.language_model.llava_mistral import SlidingWindowPruningError
from llava.model.pruning import get_method, make_dart_config
from llava.model.released_layouts import (CLIP_TOWER_ID, LLAVA_1_6_PINPOINTS, build_clip_tower,
                                          build_released_checkpoint, install_in_hub_cache, read_checkpoint_tensors)
from llava.model.tiny_checkpoint import (TinySpec, make_llm, make_projector_state, write_tokenizer,
                                         write_vision_tower)
from llava.pruning_settings import METHOD_LABELS

RELEASE = "liuhaotian/llava-v1.6-mistral-7b"


# -- checkpoints ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """An offline hub cache holding the look-alike of the CLIP tower the release names by hub id."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    install_in_hub_cache(CLIP_TOWER_ID, build_clip_tower(root / "clip"), cache)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield cache


@pytest.fixture(scope="module")
def ckpt(hub_cache, tmp_path_factory):
    return build_released_checkpoint(RELEASE, tmp_path_factory.mktemp("mistral") / "llava-v1.6-mistral-7b")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


# The stage-1 run and its base LLM are not released; written here with Mistral-7B-Instruct-v0.2's fields.
STAGE_ONE_SPEC = TinySpec(seed=7, intermediate_size=224, num_key_value_heads=2)


def mistral_fields(spec: TinySpec) -> dict:
    return {
        "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": spec.hidden_size, "initializer_range": 0.02, "intermediate_size": spec.intermediate_size,
        "max_position_embeddings": 32768, "num_attention_heads": spec.num_attention_heads,
        "num_hidden_layers": spec.num_layers, "num_key_value_heads": spec.num_key_value_heads,
        "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": spec.vocab_size,
    }


def write_mistral_base(out: Path, spec: TinySpec = STAGE_ONE_SPEC) -> Path:
    """Mistral-7B-Instruct-v0.2's layout (model_type "mistral"), float32 weights of `make_llm(spec)`."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                                     **mistral_fields(spec)})
    state = {name: t.detach().clone().contiguous() for name, t in make_llm(spec).state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(out, spec)
    return out


def write_stage_one(out: Path, spec: TinySpec = STAGE_ONE_SPEC) -> Path:
    """A LLaVA-1.6-Mistral pretraining (projector-only) output: config, mm_projector.bin, and a local tower."""
    out.mkdir(parents=True, exist_ok=True)
    write_vision_tower(out, spec)
    write_json(out / "config.json", {
        "architectures": ["LlavaMistralForCausalLM"], "model_type": "llava_mistral", **mistral_fields(spec),
        "image_aspect_ratio": "pad", "mm_hidden_size": spec.vision_hidden_size, "mm_patch_merge_type": "flat",
        "mm_projector_type": "mlp2x_gelu", "mm_use_im_patch_token": False, "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2, "mm_vision_tower": "vision_tower",
        "tune_mm_mlp_adapter": True, "unfreeze_mm_vision_tower": False, "use_mm_proj": True,
    })
    torch.save(make_projector_state(spec), out / "mm_projector.bin")
    return out


def llama_twin(model: LlavaMistralForCausalLM, attn: str = "eager") -> LlavaLlamaForCausalLM:
    """The LLaMA LLaVA class with `model`'s weights and settings."""
    config = LlavaConfig.from_dict({**model.config.to_dict(), "model_type": LlavaConfig.model_type})
    config._attn_implementation = attn
    twin = LlavaLlamaForCausalLM(config)
    twin.get_vision_tower().image_processor = model.get_vision_tower().image_processor
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval()


def settings_for(method="dart"):
    # LLaVA-1.6 (anyres) sequences take their budget from retain_token_num_for_llava_next.
    return make_dart_config(method=method, max_num_trunction=32, retain_token_num_for_llava_next=64)


def prompt_ids(tokenizer, question="What colour is the square?", image=True):
    prompt = build_prompt(question, "mistral_instruct", num_images=int(image))
    return tokenizer_image_token(prompt, tokenizer, return_tensors="pt").unsqueeze(0)


@pytest.fixture(scope="module")
def loaded(ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(ckpt), None, device="cpu", attn_implementation="eager")
    return tokenizer, model, processor


@pytest.fixture(scope="module")
def twin(loaded):
    return llama_twin(loaded[1])


@pytest.fixture(scope="module")
def inputs(loaded, tiny_image):
    tokenizer, model, processor = loaded
    return prompt_ids(tokenizer), process_images([tiny_image], processor, model.config), [tiny_image.size]


@pytest.fixture(autouse=True)
def no_pruning_by_default(loaded, twin):
    for model in (loaded[1], twin):
        model.config.DART_config = None
    yield
    for model in (loaded[1], twin):
        model.config.DART_config = None


# -- loading ----------------------------------------------------------------------------------------------


def test_read_config_gives_the_mistral_config_with_the_released_fields(ckpt):
    config = read_config(str(ckpt))
    assert type(config) is LlavaMistralConfig and config.model_type == "llava_mistral"
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert config.rope_parameters["rope_theta"] == 1e6 and config.sliding_window is None
    assert config.max_position_embeddings == 32768
    assert config.image_aspect_ratio == "anyres" and config.image_grid_pinpoints == LLAVA_1_6_PINPOINTS
    assert config.mm_patch_merge_type == "spatial_unpad" and config.unfreeze_mm_vision_tower is True


def test_every_tensor_of_the_release_layout_finds_its_place(ckpt, loaded):
    model = loaded[1]
    assert type(model) is LlavaMistralForCausalLM and not model.training
    _, info = LlavaMistralForCausalLM.from_pretrained(str(ckpt), config=read_config(str(ckpt)), output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    on_disk = read_checkpoint_tensors(ckpt)
    assert len(on_disk) > 4 * 9 and "model.image_newline" in on_disk
    state = model.state_dict()
    for name, tensor in on_disk.items():  # stored in bfloat16, loaded in float32: exactly
        ours = state[name.replace(".vision_tower.vision_model.", ".vision_tower.")]
        assert torch.equal(ours, tensor.float()), name
    assert len(state) == len(on_disk)


def test_registered_with_auto_classes():
    config = AutoConfig.for_model("llava_mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=64)
    assert isinstance(config, LlavaMistralConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), LlavaMistralForCausalLM)


def test_a_projector_only_checkpoint_on_a_mistral_base_loads_as_llava_mistral(tmp_path):
    base, stage_one = write_mistral_base(tmp_path / "mistral-base"), write_stage_one(tmp_path / "stage-one")
    assert type(llava_config_for_base(read_config(str(base)))) is LlavaMistralConfig  # what training stage 1 builds
    _, model, processor, _ = load_pretrained_model(str(stage_one), str(base), device="cpu")
    assert type(model) is LlavaMistralForCausalLM and processor is not None
    expected = {**make_llm(STAGE_ONE_SPEC).state_dict(), **make_projector_state(STAGE_ONE_SPEC)}
    state = {k: v for k, v in model.state_dict().items() if "vision_tower" not in k}
    assert sorted(state) == sorted(expected)
    for name, tensor in state.items():
        assert torch.equal(tensor, expected[name]), name


def test_the_template_is_mistral_instruct_whatever_the_name(loaded):
    tokenizer, model, _ = loaded
    assert choose_conv_mode(None, model.config, "checkpoint") == "mistral_instruct"
    assert infer_conv_mode("llava-v1.6-mistral-7b") == "mistral_instruct"
    assert choose_conv_mode("llava_v1", model.config, "checkpoint") == "llava_v1"
    assert build_prompt("What?", "mistral_instruct") == "[INST] <image>\nWhat? [/INST]"


# -- the same model as LLaMA's class, and as transformers' Mistral -----------------------------------------------


def test_unpruned_logits_equal_the_llama_class_on_the_same_weights(loaded, twin, inputs):
    model = loaded[1]
    ids, images, sizes = inputs
    spliced = model.prepare_multimodal_inputs(ids, images, image_sizes=sizes)
    assert len(spliced.image_spans[0]) == 1 and spliced.image_spans[0][0][1] > 576  # anyres: more than one crop
    with torch.no_grad():
        ours = model(input_ids=ids, images=images, image_sizes=sizes).logits
        theirs = twin(input_ids=ids, images=images, image_sizes=sizes).logits
    assert ours.shape[1] == spliced.inputs_embeds.shape[1]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def transformers_mistral(model, sliding_window=None) -> MistralForCausalLM:
    cfg = model.config
    reference = MistralForCausalLM(MistralConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
        max_position_embeddings=cfg.max_position_embeddings, rope_parameters=cfg.rope_parameters,
        sliding_window=sliding_window, attn_implementation="eager",
    )).eval()
    skip = ("mm_projector", "vision_tower", "image_newline")
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if not any(s in k for s in skip)})
    return reference


def test_text_only_logits_equal_transformers_mistral(loaded):
    tokenizer, model, _ = loaded
    ids = prompt_ids(tokenizer, "Which colour do you get when you mix red and white paint?", image=False)
    with torch.no_grad():
        ours = model(input_ids=ids).logits
        theirs = transformers_mistral(model)(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


# -- pruning: the LLaMA class's engine, the same result ------------------------------------------------------


@contextlib.contextmanager
def llava_1_5_layout(*models):
    """The models' configs switched to LLaVA-1.5's image layout (one padded crop, flat), restored on exit."""
    saved = [(m.config.image_aspect_ratio, m.config.mm_patch_merge_type) for m in models]
    for m in models:
        m.config.image_aspect_ratio, m.config.mm_patch_merge_type = "pad", "flat"
    try:
        yield
    finally:
        for m, (ratio, merge) in zip(models, saved):
            m.config.image_aspect_ratio, m.config.mm_patch_merge_type = ratio, merge


def pruned_run(model, ids, images, sizes, method):
    """(error message or None, record, logits) of one pruned forward (the question given for the methods that
    prune for it)."""
    record = PruningRecord(dart_config=settings_for(method), instructions=["What is shown in the image?"])
    try:
        with torch.no_grad():
            logits = model(input_ids=ids, images=images, image_sizes=sizes, pruning_record=record).logits
    except ValueError as exc:
        return str(exc), record, None
    return None, record, logits


def reductions(record):
    return [[(r.original_tokens, None if r.kept_patches is None else r.kept_patches.tolist()) for r in row]
            for row in record.image_reductions]


@pytest.mark.parametrize("layout", ["anyres", "pad"])
@pytest.mark.parametrize("method", sorted(METHOD_LABELS))
def test_every_method_prunes_as_on_the_llama_class(loaded, twin, inputs, tiny_image, method, layout):
    ids, images, sizes = inputs
    with contextlib.ExitStack() as stack:
        if layout == "pad":
            stack.enter_context(llava_1_5_layout(loaded[1], twin))
            images = process_images([tiny_image], loaded[2], loaded[1].config)
        (error, ours, mistral_logits), (their_error, theirs, llama_logits) = (
            pruned_run(model, ids, images, sizes, method) for model in (loaded[1], twin))
    assert error == their_error
    # the methods that need one crop per image (and say so: the sweep leaves them out) refuse anyres, on LLaMA as here
    assert (error is not None) == (layout == "anyres" and get_method(method).one_crop)
    if error is not None:
        assert "anyres" in error
        return
    if get_method(method).before_llm:
        assert reductions(ours) == reductions(theirs) and not ours.stages
    else:
        assert ours.pruned and torch.equal(ours.keep, theirs.keep)
        assert [s.layer for s in ours.stages] == [s.layer for s in theirs.stages]
    assert ours.num_kept_image_tokens() == theirs.num_kept_image_tokens() < ours.num_image_tokens()
    torch.testing.assert_close(mistral_logits, llama_logits, rtol=0, atol=1e-5)


def test_pruned_cached_generation_equals_the_llama_class(loaded, twin, inputs):
    ids, images, sizes = inputs
    outputs, records = [], []
    with torch.no_grad():
        for model in (loaded[1], twin):
            model.config.DART_config = settings_for()
            outputs.append(model.generate(ids, images=images, image_sizes=sizes, max_new_tokens=6, min_new_tokens=6,
                                          do_sample=False))
            records.append(model.last_pruning_record)
    assert records[0].pruned and torch.equal(records[0].keep, records[1].keep)
    assert outputs[0].tolist() == outputs[1].tolist() and outputs[0].shape[1] == 6


# -- the sliding window -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def windowed(ckpt, tmp_path_factory):
    """The release with a sliding window of 8 tokens (as Mistral-7B-v0.1's 4096, only binding on tiny prompts)."""
    path = tmp_path_factory.mktemp("window") / "llava-mistral-window"
    shutil.copytree(ckpt, path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "sliding_window": 8}))
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu", attn_implementation="eager")
    return tokenizer, model, processor


def test_a_sliding_window_masks_as_transformers_mistral(windowed, loaded):
    tokenizer, model, _ = windowed
    ids = prompt_ids(tokenizer, "Which colour do you get when you mix red and white paint?", image=False)
    assert ids.shape[1] > 2 * 8  # the window binds
    with torch.no_grad():
        ours = model(input_ids=ids).logits
        theirs = transformers_mistral(model, sliding_window=8)(input_ids=ids).logits
        unwindowed = loaded[1](input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert not torch.allclose(ours, unwindowed, atol=1e-3)


def test_pruning_with_a_sliding_window_is_refused_before_any_layer_runs(windowed, tiny_image):
    tokenizer, model, processor = windowed
    ids = prompt_ids(tokenizer)
    images = process_images([tiny_image], processor, model.config)
    cache = DynamicCache(config=model.config)
    record = PruningRecord(dart_config=settings_for())
    with pytest.raises(SlidingWindowPruningError, match=r"sliding_window=8.*config\.sliding_window = None"):
        with torch.no_grad():
            model(input_ids=ids, images=images, image_sizes=[tiny_image.size], past_key_values=cache,
                  use_cache=True, pruning_record=record)
    assert cache.get_seq_length() == 0 and not record.pruned
    # Without pruning, and with a method that reduces the image before the language model, it runs.
    with torch.no_grad():
        model(input_ids=ids, images=images, image_sizes=[tiny_image.size])
        reduced = PruningRecord(dart_config=settings_for("divprune"))
        model(input_ids=ids, images=images, image_sizes=[tiny_image.size], pruning_record=reduced)
    assert reduced.image_reductions
    # The way out the message names.
    model.config.sliding_window = None
    try:
        with torch.no_grad():
            model(input_ids=ids, images=images, image_sizes=[tiny_image.size], pruning_record=record)
    finally:
        model.config.sliding_window = 8
    assert record.pruned
