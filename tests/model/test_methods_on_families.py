"""Every registered pruning method on a tiny checkpoint of every family that prunes, through the families' own
prompts (`LoadedModel.question_inputs`) and `generate`: each pair either keeps the count its method documents or
is refused with a message that says why.

`DECIDED` is the one table: per method, the families it is refused on and the reason's pattern (every other family
runs it). It is checked against what the methods and families declare (a method reading the tower's [CLS] token
is refused where the family's tower has none, `vision_cls_attention`; any other refusal is in the family's
`refused_methods`), and it must name every registered method and the families must be the ones registered: a new
method or family fails here until its pairs are decided. The run takes about 20 s (five tiny checkpoints).
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from llava.model import PruningRecord
from llava.model.families import families, load_model
from llava.model.pruning import PruningInput, get_method, make_dart_config, method_names
from llava.model.pruning.pooling import pooled_shape
from llava.model.released_layouts import ONEVISION_REPO, build_released_checkpoint
from llava.model.tiny_checkpoint import build_tiny_checkpoint
from llava.pruning_settings import METHOD_LABELS

pytestmark = pytest.mark.usefixtures("one_thread")

# family -> how its tiny checkpoint is built, and the LLaVA conversation template its prompts take (None: its own).
CHECKPOINTS = {
    "llava": (lambda out: build_tiny_checkpoint(out, seed=0), "vicuna_v1"),
    "llava_hf": (lambda out: build_released_checkpoint("llava-hf/llava-1.5-7b-hf", out), "vicuna_v1"),
    "llava_onevision": (lambda out: build_released_checkpoint(ONEVISION_REPO, out), None),
    "qwen_vl": (lambda out: build_released_checkpoint("Qwen/Qwen2-VL-7B-Instruct", out), None),
    "qwen3_vl": (lambda out: build_released_checkpoint("Qwen/Qwen3-VL-8B-Instruct", out), None),
}
FAMILIES = tuple(CHECKPOINTS)
CLS = r"no \[CLS\] token"
NO_TEXT_HALF = r"text half"
ONE_GRID = r"no single grid"
NOT_CLS_FAMILIES = ("llava_onevision", "qwen_vl", "qwen3_vl")

# method -> {family: pattern of its refusal there}; every family not named runs the method.
DECIDED: dict[str, dict[str, str]] = {
    "dart": {},
    "fastv": {},
    "pdrop": {},
    "random": {},
    "sparsevlm": {},
    "dart_k0": {},
    "divprune": {},
    "pooling": {"llava_onevision": ONE_GRID},
    "visionzip": dict.fromkeys(NOT_CLS_FAMILIES, CLS),
    "vispruner": dict.fromkeys(NOT_CLS_FAMILIES, CLS),
    "holov": dict.fromkeys(NOT_CLS_FAMILIES, CLS),
    # CDPruner embeds the instruction with the text half of the vision tower's CLIP checkpoint: LLaVA's tower folder
    # carries it; llava-hf and OneVision checkpoints hold the vision model alone; the Qwen ViT is no CLIP.
    "cdpruner": {"llava_hf": NO_TEXT_HALF, "llava_onevision": NO_TEXT_HALF, "qwen_vl": NO_TEXT_HALF,
                 "qwen3_vl": NO_TEXT_HALF},
}
# Methods whose kept count is their own schedule (several stages), not DART's single count.
OWN_SCHEDULE = ("pdrop", "sparsevlm")


def test_every_method_and_family_is_decided():
    assert sorted(DECIDED) == method_names(), "decide the new method's families in DECIDED"
    assert set(FAMILIES) == {family.name for family in families() if family.prunes}, "give the new family a checkpoint"
    for method, refusals in DECIDED.items():
        assert set(refusals) <= set(FAMILIES)
    assert sorted(METHOD_LABELS) == method_names(), "the demo's method choice (METHOD_LABELS) lists every method"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_table_agrees_with_the_declarations(family):
    (declared,) = [f for f in families() if f.name == family]
    for method in method_names():
        refused = family in DECIDED[method]
        if get_method(method).before_llm and not declared.before_llm_methods:
            assert refused
        if PruningInput.VISION_CLS_ATTENTION in get_method(method).inputs and not getattr(
                declared, "vision_cls_attention", True):
            assert refused, f"{method} reads the [CLS] token, which the {family} family's tower has not"
        if method in declared.refused_methods:
            assert refused, f"the {family} family declares {method} refused: {declared.refused_methods[method]}"
        # What the table refuses beyond the flags, the family declares (the sweep and the demo read it).
        if refused and not (PruningInput.VISION_CLS_ATTENTION in get_method(method).inputs
                            and not getattr(declared, "vision_cls_attention", True)):
            assert method in declared.refused_methods, f"declare {method} in {family}'s refused_methods"


def picture(seed: int, size=(336, 336)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy())


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    cache = {}

    def get(family):
        if family not in cache:
            build, conv_mode = CHECKPOINTS[family]
            path = build(tmp_path_factory.mktemp(family) / family)
            cache[family] = (load_model(str(path), None, device="cpu"), conv_mode)
        return cache[family]

    return get


def settings(family: str, method: str) -> dict:
    (declared,) = [f for f in families() if f.name == family]
    if declared.ratio_budget:
        return make_dart_config(K=2, method=method, reduction_ratio=0.778, max_num_trunction=None, seed=1)
    return make_dart_config(K=2, method=method, max_num_trunction=32, seed=1)


def run(family: str, method: str, loaded) -> PruningRecord:
    model, conv_mode = loaded(family)
    question = "What colour is the square?"
    inputs = model.question_inputs(question, [picture(3)], conv_mode)
    record = PruningRecord(dart_config=settings(family, method), instructions=[inputs.instruction])
    with torch.no_grad():
        model.model.generate(**model.generate_inputs([inputs]), pruning_record=record, max_new_tokens=2,
                             min_new_tokens=2, do_sample=False)
    return record


@pytest.mark.parametrize("method", sorted(DECIDED))
@pytest.mark.parametrize("family", FAMILIES)
def test_each_method_runs_with_its_count_or_is_refused_with_why(family, method, loaded):
    refusal = DECIDED[method].get(family)
    if refusal is not None:
        with pytest.raises(ValueError, match=refusal):
            run(family, method, loaded)
        return
    record = run(family, method, loaded)
    total, kept = record.num_image_tokens(0), record.num_kept_image_tokens(0)
    if method in OWN_SCHEDULE:
        assert 0 < kept < total
        return
    dart = run(family, "dart", loaded)
    count = dart.num_kept_image_tokens(0)
    assert dart.num_image_tokens(0) == total and 0 < count < total
    if method == "pooling":
        (reduction,) = record.image_reductions[0]
        side = int(total ** 0.5)
        grid = (side, side) if side * side == total else None
        if grid is not None:
            height, width = pooled_shape(count, grid)
            count = height * width
    assert kept == count, f"{method} on {family}: kept {kept} of {total}, DART's count is {count}"
