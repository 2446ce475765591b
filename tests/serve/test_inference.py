"""The streaming generation core of the worker and the CLI, in-process on the seeded tiny checkpoint."""

import threading
import time
from types import SimpleNamespace

import pytest

from llava.eval.core.common import generate_answer, generation_kwargs
from llava.eval.core.prompting import build_prompt
from llava.model.families import PromptError, load_model
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.serve.inference import SamplingParams, StreamedGeneration, fit_to_context

DART_64 = parse_dart_config(make_dart_config(K=2, max_num_trunction=64)).to_dict()


@pytest.fixture(scope="module")
def loaded(tiny_ckpt):
    return load_model(str(tiny_ckpt), None, device="cpu")


def _inputs(loaded, image, question="What is shown?", images=None):
    prompt = build_prompt(question, "vicuna_v1")
    inputs = loaded.prompt_inputs(prompt, [image] if images is None else images)
    fit_to_context(inputs, loaded)  # refuses a prompt that leaves no room
    return inputs


def _run(loaded, inputs, params, dart_config, **kwargs):
    generation = StreamedGeneration(loaded, inputs, params, dart_config, **kwargs)
    deltas = list(generation.start())
    return generation, deltas


def _wait_for(predicate):
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("dart_config", [None, DART_64], ids=["unpruned", "dart64"])
def test_streamed_answer_equals_a_plain_generate_call(loaded, tiny_image, dart_config):
    inputs = _inputs(loaded, tiny_image)
    # The call's own settings decide, not model.config: give model.config the opposite.
    loaded.model.config.DART_config = None if dart_config else DART_64
    try:
        generation, deltas = _run(loaded, inputs, SamplingParams(temperature=0, max_new_tokens=6), dart_config)
        assert generation.error is None
        report = generation.report

        # The reference: the eval core's generate_answer with the same DART_config model-wide, not streamed.
        loaded.model.config.DART_config = dart_config
        reference = generate_answer(
            loaded.model, loaded.tokenizer, inputs.input_ids, inputs.image_inputs["pixels"], inputs.image_sizes,
            generation_kwargs(SimpleNamespace(temperature=0, num_beams=1, max_new_tokens=6, top_p=None)),
        )
    finally:
        loaded.model.config.DART_config = None
    assert "".join(deltas).strip() == report.text == reference.text
    assert report.num_tokens == reference.num_tokens == 6  # the random model never stops by itself
    assert report.finish_reason == "length"

    pruning = report.pruning()
    expected_kept = 4 + 8 * (64 // 8) if dart_config else 576
    assert pruning["kept_image_tokens"] == reference.record.num_kept_image_tokens() == expected_kept
    assert pruning["image_tokens"] == 576
    assert pruning["pruned"] is (dart_config is not None) and pruning["enabled"] is (dart_config is not None)
    assert pruning["kept_indices"] == [p.tolist() for p in reference.record.kept_image_positions()]
    assert pruning["patch_grid"] == [24, 24] and pruning["image_aspect_ratio"] == "pad"
    assert 0 < pruning["prefill_seconds"] <= report.seconds
    assert (pruning["selection_seconds"] > 0) is (dart_config is not None)


def test_prompt_length_counts_image_tokens(loaded, tiny_image):
    inputs = _inputs(loaded, tiny_image)
    text_tokens = int(inputs.input_ids.shape[0]) - 1  # minus the one placeholder
    assert inputs.sequence_length == text_tokens + 576 and inputs.image_tokens == [576]
    assert fit_to_context(inputs, loaded, 100000) == loaded.context_len - inputs.sequence_length  # what fits
    assert fit_to_context(inputs, loaded, 6) == 6


def test_stop_string_ends_the_answer_before_it(loaded, tiny_image):
    inputs = _inputs(loaded, tiny_image)
    full, _ = _run(loaded, inputs, SamplingParams(temperature=0, max_new_tokens=12), None)
    text = full.report.text
    assert len(text) >= 6, text
    stop = text[3:5]
    stopped, deltas = _run(loaded, inputs, SamplingParams(temperature=0, max_new_tokens=12, stop=stop), None)
    assert stopped.report.text == text[: text.index(stop)].strip()
    assert stop not in "".join(deltas)
    assert stopped.report.num_tokens < 12 and stopped.report.finish_reason == "stop"


def test_prepare_inputs_refuses_mismatched_images_and_overlong_prompts(loaded, tiny_image):
    with pytest.raises(PromptError, match="1 <image> token.* but 2 image"):
        _inputs(loaded, tiny_image, images=[tiny_image, tiny_image])
    with pytest.raises(PromptError, match="1 <image> token.* but 0 image"):
        _inputs(loaded, tiny_image, images=[])
    with pytest.raises(PromptError, match=r"this model takes prompts of at most 2047 tokens"):
        _inputs(loaded, tiny_image, question="red box " * 1000)


def test_cancel_stops_after_the_current_token(loaded, tiny_image):
    inputs = _inputs(loaded, tiny_image)
    generation = StreamedGeneration(loaded, inputs, SamplingParams(0, 1, 400), None).start()
    _wait_for(lambda: generation.streamer.num_tokens > 0)  # decoding has started
    generation.cancel()
    list(generation)
    assert generation.report.finish_reason == "cancelled"
    assert generation.report.num_tokens < 400


def test_a_failing_generate_is_reported_and_frees_the_slot(loaded, tiny_image, monkeypatch):
    def broken_generate(*args, **kwargs):
        raise RuntimeError("device on fire")

    monkeypatch.setattr(loaded.model, "generate", broken_generate)
    finished = []
    generation, deltas = _run(loaded, _inputs(loaded, tiny_image), SamplingParams(), None,
                              on_finish=lambda: finished.append(True))
    assert deltas == [] and generation.report is None
    assert "device on fire" in str(generation.error)
    assert finished == [True]


# -- overlapping calls with different DART settings -------------------------------------------------------


def test_overlapping_streams_with_different_settings_run_at_once(loaded, tiny_image):
    inputs = _inputs(loaded, tiny_image)
    params = SamplingParams(temperature=0, max_new_tokens=6)
    settings = [None, DART_64, parse_dart_config(make_dart_config(K=3, max_num_trunction=16)).to_dict()]
    alone = [_run(loaded, inputs, params, dart_config)[0].report for dart_config in settings]

    # Each call waits after its prefill until every call has prefilled: this completes only if no call
    # waits for another to finish (the old model-wide settings had to serialize these three).
    barrier, calls = threading.Barrier(len(settings)), threading.local()

    def wait_after_prefill(module, args, output):
        calls.count = getattr(calls, "count", 0) + 1
        if calls.count == 1:
            barrier.wait(timeout=60)

    handle = loaded.model.lm_head.register_forward_hook(wait_after_prefill)
    try:
        generations = [StreamedGeneration(loaded, inputs, params, dart_config).start()
                       for dart_config in settings]
        texts = ["".join(g) for g in generations]
    finally:
        handle.remove()
    assert not barrier.broken
    for generation, text, reference, dart_config in zip(generations, texts, alone, settings):
        assert generation.error is None
        report = generation.report
        assert text.strip() == report.text == reference.text
        pruning = report.pruning()
        assert pruning["config"] == dart_config and pruning["enabled"] is (dart_config is not None)
        assert pruning["kept_image_tokens"] == reference.record.num_kept_image_tokens()
        assert pruning["kept_indices"] == reference.pruning()["kept_indices"]
    assert [g.report.record.num_kept_image_tokens() for g in generations] == [576, 4 + 64, 4 + 16]
    assert [g.report.record.layer for g in generations] == [None, 2, 3]
    assert loaded.model.config.DART_config is None  # never written by a call


def test_sampling_params_follow_llavas_temperature_convention():
    assert SamplingParams(temperature=0).generate_kwargs()["do_sample"] is False
    assert "temperature" not in SamplingParams(temperature=0).generate_kwargs()
    sampled = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=5).generate_kwargs()
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9
    assert sampled["max_new_tokens"] == 5


@pytest.mark.parametrize("method", ["divprune", "pooling"])
def test_a_method_before_the_language_model_reports_the_images_own_grid(loaded, tiny_image, method):
    """The summary counts the image's 576 tokens, the kept ones, and the kept patches where they are patches
    of the image (DivPrune); pooled tokens have none, so the demo draws no kept-patch view."""
    from llava.serve.gradio_web_server import overlay_for

    settings = parse_dart_config(make_dart_config(method=method, max_num_trunction=64)).to_dict()
    generation, _ = _run(loaded, _inputs(loaded, tiny_image), SamplingParams(temperature=0, max_new_tokens=3), settings)
    pruning = generation.report.pruning()
    assert (pruning["image_tokens"], pruning["pruned"], pruning["patch_grid"]) == (576, True, [24, 24])
    if method == "divprune":
        assert pruning["kept_image_tokens"] == 68 and len(pruning["kept_indices"][0]) == 68
    else:
        assert pruning["kept_image_tokens"] == 64 and pruning["kept_indices"] == [None]  # 8 x 8 pooled
        state = SimpleNamespace(conv=SimpleNamespace(get_images=lambda return_pil: [tiny_image]))
        assert overlay_for(state, pruning) is None
    assert pruning["selection_seconds"] > 0
