"""The streaming generation core of the worker and the CLI, in-process on the seeded tiny checkpoint."""

import threading
import time
from types import SimpleNamespace

import pytest

from llava.eval.common import generate_answer, generation_kwargs
from llava.eval.prompting import build_prompt
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.serve.inference import DartSettingGate, PromptError, SamplingParams, StreamedGeneration, prepare_inputs

DART_64 = parse_dart_config(make_dart_config(K=2, max_num_trunction=64)).to_dict()


@pytest.fixture(scope="module")
def loaded(tiny_ckpt):
    tokenizer, model, image_processor, context_len = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    return SimpleNamespace(tokenizer=tokenizer, model=model, image_processor=image_processor, context_len=context_len,
                           gate=DartSettingGate(model))


def _inputs(loaded, image, question="What is shown?", max_new_tokens=6, images=None):
    prompt = build_prompt(question, "vicuna_v1")
    return prepare_inputs(prompt, [image] if images is None else images, loaded.tokenizer, loaded.image_processor,
                          loaded.model, loaded.context_len, max_new_tokens)


def _run(loaded, inputs, params, dart_config, **kwargs):
    generation = StreamedGeneration(loaded.model, loaded.tokenizer, inputs, params, dart_config, loaded.gate, **kwargs)
    deltas = list(generation.start())
    return generation, deltas


@pytest.mark.parametrize("dart_config", [None, DART_64], ids=["unpruned", "dart64"])
def test_streamed_answer_equals_a_plain_generate_call(loaded, tiny_image, dart_config):
    inputs = _inputs(loaded, tiny_image)
    generation, deltas = _run(loaded, inputs, SamplingParams(temperature=0, max_new_tokens=6), dart_config)
    assert generation.error is None
    report = generation.report

    # The reference: the eval core's generate_answer with the same DART_config, not streamed.
    loaded.model.config.DART_config = dart_config
    reference = generate_answer(
        loaded.model, loaded.tokenizer, inputs.input_ids, inputs.pixels, inputs.image_sizes,
        generation_kwargs(SimpleNamespace(temperature=0, num_beams=1, max_new_tokens=6, top_p=None)),
    )
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
    inputs = _inputs(loaded, tiny_image, max_new_tokens=100000)
    text_tokens = int(inputs.input_ids.shape[0]) - 1  # minus the one placeholder
    assert inputs.sequence_length == text_tokens + 576
    assert inputs.max_new_tokens == loaded.context_len - inputs.sequence_length  # lowered to what fits


def test_stop_string_ends_the_answer_before_it(loaded, tiny_image):
    inputs = _inputs(loaded, tiny_image, max_new_tokens=12)
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
    inputs = _inputs(loaded, tiny_image, max_new_tokens=400)
    generation = StreamedGeneration(loaded.model, loaded.tokenizer, inputs, SamplingParams(0, 1, 400), None,
                                    loaded.gate).start()
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
    assert loaded.gate.active == 0


# -- the gate that keeps concurrent calls' DART settings apart ----------------------------------------------


def _holder(gate, settings, log, hold: threading.Event, name):
    with gate.use(settings):
        log.append(("enter", name, gate._model.config.DART_config))
        hold.wait(5)
        log.append(("exit", name))


def _start(*args):
    thread = threading.Thread(target=_holder, args=args)
    thread.start()
    return thread


def _wait_for(predicate):
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_gate_lets_equal_settings_overlap():
    gate = DartSettingGate(SimpleNamespace(config=SimpleNamespace(DART_config="initial")))
    log, hold = [], threading.Event()
    threads = [_start(gate, {"K": 2}, log, hold, name) for name in "ab"]
    _wait_for(lambda: gate.active == 2)  # both inside at once
    hold.set()
    for t in threads:
        t.join()
    assert [entry[2] for entry in log if entry[0] == "enter"] == [{"K": 2}, {"K": 2}]


def test_gate_serializes_different_settings_in_arrival_order():
    model = SimpleNamespace(config=SimpleNamespace(DART_config=None))
    gate = DartSettingGate(model)
    log = []
    hold_a, hold_b, hold_c = threading.Event(), threading.Event(), threading.Event()
    a = _start(gate, {"K": 2}, log, hold_a, "a")
    _wait_for(lambda: gate.active == 1)
    b = _start(gate, None, log, hold_b, "b")  # other settings: must wait for a
    _wait_for(lambda: len(gate._queue) == 1)
    c = _start(gate, {"K": 2}, log, hold_c, "c")  # a's settings, but behind b: must not overtake it
    _wait_for(lambda: len(gate._queue) == 2)
    assert gate.active == 1 and model.config.DART_config == {"K": 2}
    hold_a.set()
    a.join()
    _wait_for(lambda: ("enter", "b", None) in log)
    assert gate.active == 1 and model.config.DART_config is None  # c still waits: b's settings differ
    hold_b.set()
    b.join()
    hold_c.set()
    c.join()
    assert [(e[0], e[1]) for e in log] == [("enter", "a"), ("exit", "a"), ("enter", "b"), ("exit", "b"),
                                           ("enter", "c"), ("exit", "c")]
    assert log[4][2] == {"K": 2}


def test_sampling_params_follow_llavas_temperature_convention():
    assert SamplingParams(temperature=0).generate_kwargs()["do_sample"] is False
    assert "temperature" not in SamplingParams(temperature=0).generate_kwargs()
    sampled = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=5).generate_kwargs()
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9
    assert sampled["max_new_tokens"] == 5
