"""CDPruner: relevance and the greedy MAP against hand-computed cases and a brute-force determinant greedy, the
rank-exhaustion rule, and through generate on a tiny LLaVA whose CLIP tower carries its text half and tokenizer."""

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_engine import generate_single, scene
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import VisionInputs, make_dart_config, parse_dart_config
from llava.model.pruning.cdpruner import conditional_kernel, greedy_map, reduce, relevance_scores


def directions(degrees, dtype=torch.float32):
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1).to(dtype)


def test_relevance_is_the_min_max_of_minus_the_mean_cosine():
    """Cosines 1, 0, -1 to the one segment; negated -1, 0, 1; min-max with the official 1e-6."""
    relevance = relevance_scores(directions([0, 90, 180]) * 3, directions([0]))
    torch.testing.assert_close(relevance, torch.tensor([5e-7, 0.5 + 5e-7, 1 + 5e-7]), rtol=0, atol=1e-7)
    # Two segments: the cosines are averaged before the min-max.
    two = relevance_scores(directions([0, 90, 180]), directions([0, 90]))
    torch.testing.assert_close(two, torch.tensor([5e-7, 5e-7, 1 + 5e-7]), rtol=0, atol=1e-6)


def brute_force_greedy(kernel, count):
    """Each step adds the index that maximises det(L_S), the greedy MAP the fast algorithm computes."""
    kernel = kernel.double()
    picked = []
    for _ in range(count):
        free = [i for i in range(kernel.shape[0]) if i not in picked]
        dets = [torch.linalg.det(kernel[picked + [i]][:, picked + [i]]) for i in free]
        picked.append(free[int(torch.stack(dets).argmax())])
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_greedy_is_the_greedy_determinant_maximiser(seed):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(9, 16, generator=g)
    relevance = torch.rand(9, generator=g) + 0.1
    kernel = conditional_kernel(features, relevance)
    assert greedy_map(kernel, 6).tolist() == brute_force_greedy(kernel, 6)


def test_an_exhausted_kernel_is_filled_by_relevance():
    """Five 2-D tokens (rank 2). Relevance 1, .5, .9, .8, .7: the diagonal 1, .25, .81, .64, .49 picks 0 (0 deg);
    the residuals rel^2 sin^2: 10 deg .0075, 90 deg .81, 100 deg .62, 45 deg .245 pick 2; then nothing is left to
    span, and 3, 4, 1 follow by relevance."""
    kernel = conditional_kernel(directions([0, 10, 90, 100, 45]), torch.tensor([1, 0.5, 0.9, 0.8, 0.7]))
    assert greedy_map(kernel, 2).tolist() == [0, 2]
    assert greedy_map(kernel, 4).tolist() == [0, 2, 3, 4]
    assert greedy_map(kernel, 9).tolist() == [0, 2, 3, 4, 1]


def test_reduce_refuses_merged_crops_and_a_missing_instruction():
    cfg = parse_dart_config(make_dart_config(method="cdpruner", max_num_trunction=0))
    features = torch.randn(16, 6)
    with pytest.raises(ValueError, match="one crop"):
        reduce(VisionInputs(features, None), cfg)
    with pytest.raises(ValueError, match="instructions"):
        reduce(VisionInputs(features, (4, 4), tower_features=torch.randn(16, 4)), cfg)


# -- through the model -------------------------------------------------------------------------------------

def strip_clip_text_half(tower_dir):
    """Leave the tiny tower's CLIP checkpoint its vision half only (the tiny checkpoints carry a text half)."""
    state = load_file(str(tower_dir / "model.safetensors"))
    save_file({k: v for k, v in state.items() if k.startswith("vision_model.")}, str(tower_dir / "model.safetensors"),
              metadata={"format": "pt"})


@pytest.fixture(scope="module")
def llava(tiny_ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("cdpruner") / "llava"
    shutil.copytree(tiny_ckpt, path)  # its tower folder carries CLIP's text half and tokenizer
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    return tokenizer, model, processor, ids, process_images([scene(7)], processor, model.config)


def test_generate_keeps_darts_count_chosen_for_the_instruction(llava):
    from transformers import AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    _, model, _, ids, images = llava
    settings = make_dart_config(method="cdpruner", max_num_trunction=32)  # 4 + 8 * 4 = 36 tokens, as DART
    kept = {}
    for question in ("What colour is the square?", "How many dogs are in the picture? " * 12):  # 1 and 2 segments
        record = PruningRecord(dart_config=settings, instructions=[question])
        generate_single(model, ids, images, record, max_new_tokens=2)
        assert (record.num_kept_image_tokens(), record.num_image_tokens()) == (36, 576)
        (kept[question],) = record.kept_image_positions()
    # The same pieces, assembled here from the checkpoint directly.
    tower = model.get_vision_tower()
    name = tower.vision_tower_name
    clip_tokenizer = AutoTokenizer.from_pretrained(name)
    text = CLIPTextModelWithProjection.from_pretrained(name, dtype=torch.float32)
    projection = CLIPVisionModelWithProjection.from_pretrained(name, dtype=torch.float32).visual_projection
    with torch.no_grad():
        select = tower.forward_with_cls_attention(images)
        tokens = clip_tokenizer("What colour is the square?", return_tensors="pt")
        pad = 77 - tokens["input_ids"].shape[1]
        text_embeds = text(**{k: torch.cat([v, v.new_zeros(1, pad)], 1) for k, v in tokens.items()}).text_embeds
        image_embeds = projection(tower.vision_tower.post_layernorm(select.patches[0]).float())
        features = model.project_features(select.patches[0])
        kernel = conditional_kernel(features, relevance_scores(image_embeds, text_embeds))
    assert torch.equal(kept["What colour is the square?"], greedy_map(kernel, 36).sort().values)
    assert not torch.equal(kept["What colour is the square?"], kept["How many dogs are in the picture? " * 12])


def test_a_tower_without_its_text_half_is_a_clear_error(tiny_ckpt, tmp_path):
    shutil.copytree(tiny_ckpt, tmp_path / "llava")
    strip_clip_text_half(tmp_path / "llava" / "vision_tower")
    _, model, processor, _ = load_pretrained_model(str(tmp_path / "llava"), None, device="cpu")
    tokenizer_ids = torch.tensor([1, -200, 29871, 13])  # BOS, <image>, a newline
    images = process_images([scene(1)], processor, model.config)
    record = PruningRecord(dart_config=make_dart_config(method="cdpruner", max_num_trunction=32),
                           instructions=["What is it?"])
    with pytest.raises(ValueError, match="text half"):
        generate_single(model, tokenizer_ids, images, record, max_new_tokens=1)
