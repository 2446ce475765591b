"""Training data is checked in full before the model loads: one error naming the file, the sample (index and
id) and the problem, for each way LLaVA's conversation JSON can be wrong."""

import json

import pytest
from PIL import Image

import llava.train.train as train_module
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments
from llava.train.data_checks import TrainingDataError, load_training_samples


def human(text="<image>\nWhat colour is it?"):
    return {"from": "human", "value": text}


def gpt(text="red"):
    return {"from": "gpt", "value": text}


GOOD = {"id": "good", "image": "red.png", "conversations": [human(), gpt()]}

# case: (the file's text, what the error must say). Sample 0 is always good, so the index is the bad one's.
BAD_DATA = {
    "missing image": (json.dumps([GOOD, {**GOOD, "id": "x1", "image": "absent.png"}]),
                      r"sample 1 \(id 'x1'\): image not found: .*absent\.png"),
    "starts with the assistant": (json.dumps([GOOD, {**GOOD, "id": "x2", "conversations": [gpt(), human(), gpt()]}]),
                                  r"sample 1 \(id 'x2'\): the conversation starts with 'gpt'; the first turn must "
                                  r"be the 'human' one"),
    "no conversations": (json.dumps([GOOD, {"id": "x3", "image": "red.png"}]),
                         r"sample 1 \(id 'x3'\): no 'conversations'"),
    "unknown role": (json.dumps([GOOD, {**GOOD, "id": "x4", "conversations": [human(), {"from": "assistant",
                                                                                          "value": "red"}]}]),
                     r"sample 1 \(id 'x4'\): turn 1 is from 'assistant'; the roles are 'human' and 'gpt'"),
    "conversations not a list": (json.dumps([GOOD, {**GOOD, "id": "x5", "conversations": "What colour?"}]),
                                 r"sample 1 \(id 'x5'\): 'conversations' must be a list of turns, got a JSON string"),
    "turns that do not alternate": (json.dumps([GOOD, {**GOOD, "id": "x6", "conversations": [human(), human("b")]}]),
                                    r"sample 1 \(id 'x6'\): turn 1 is from 'human' where 'gpt' was expected"),
    "a sample that is not an object": (json.dumps([GOOD, ["human", "gpt"]]),
                                       r"sample 1: expected a JSON object, got a JSON list"),
    "the file is not a list": (json.dumps({"conversations": [human(), gpt()]}),
                               r"data\.json: expected a JSON list of .*; got a JSON object"),
    "an empty list": ("[]", r"data\.json: the list holds no samples"),
    "invalid JSON": ('[\n  {"id": "a",\n   "conversations": [}\n]', r"data\.json: not valid JSON at line 3, column 22"),
}


@pytest.fixture
def data_dir(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8), (220, 20, 20)).save(images / "red.png")
    return tmp_path


@pytest.fixture
def no_model_loading(monkeypatch):
    """Loading the model (or its tokenizer) fails the test: the data must be refused before either."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the training data was checked")

    monkeypatch.setattr(train_module, "build_model", refuse)
    monkeypatch.setattr(train_module, "load_tokenizer", refuse)


def training_args(data_dir, data_file):
    model = ModelArguments(model_name_or_path=str(data_dir / "never-loaded"), version="v1",
                           vision_tower="openai/clip-vit-large-patch14-336")
    data = DataArguments(data_path=str(data_file), image_folder=str(data_dir / "images"))
    training = TrainingArguments(output_dir=str(data_dir / "out"), use_cpu=True, report_to=[])
    return model, data, training


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_training_data_is_refused_before_the_model_loads(case, data_dir, no_model_loading):
    text, message = BAD_DATA[case]
    data_file = data_dir / "data.json"
    data_file.write_text(text)
    with pytest.raises(TrainingDataError, match=message):
        train_module.run(*training_args(data_dir, data_file))


def test_the_command_line_gets_one_line_per_problem_and_no_traceback(data_dir, no_model_loading):
    data_file = data_dir / "data.json"
    bad = [{**GOOD, "id": f"m{i}", "image": f"absent{i}.png"} for i in range(7)]
    data_file.write_text(json.dumps([GOOD, *bad]))
    argv = ["--model_name_or_path", str(data_dir / "never-loaded"), "--vision_tower", "tower", "--data_path",
            str(data_file), "--image_folder", str(data_dir / "images"), "--output_dir", str(data_dir / "out"),
            "--use_cpu", "True", "--report_to", "none"]
    with pytest.raises(SystemExit) as stopped:
        train_module.main(argv)
    message = stopped.value.code
    assert isinstance(message, str) and message.startswith(f"error: {data_file}: 7 of 8 samples cannot be trained on")
    assert "sample 1 (id 'm0'): image not found" in message and "sample 5 (id 'm4')" in message
    assert "sample 6 (id 'm5')" not in message and "... and 2 more" in message  # the first five, and a count


def test_a_missing_data_file_is_named(data_dir, no_model_loading):
    with pytest.raises(TrainingDataError, match=r"training data not found: .*nowhere\.json"):
        train_module.run(*training_args(data_dir, data_dir / "nowhere.json"))


def test_images_without_a_vision_tower_are_refused(data_dir):
    data_file = data_dir / "data.json"
    data_file.write_text(json.dumps([GOOD]))
    with pytest.raises(TrainingDataError, match=r"sample 0 \(id 'good'\): has an 'image' but the model takes none"):
        load_training_samples(str(data_file), str(data_dir / "images"), "v1", with_images=False)


def test_a_plain_sample_needs_its_caption(data_dir):
    data_file = data_dir / "data.json"
    data_file.write_text(json.dumps([GOOD, {**GOOD, "id": "c", "conversations": [human("<image>")]}]))
    with pytest.raises(TrainingDataError, match=r"sample 1 \(id 'c'\): 'conversations' has 1 turn\(s\)"):
        load_training_samples(str(data_file), str(data_dir / "images"), "plain")


def test_good_data_passes_with_text_only_and_integer_id_samples(data_dir):
    samples = [GOOD, {"id": 7, "conversations": [human("Say yes."), gpt("yes"), human("Again?"), gpt("yes")]}]
    data_file = data_dir / "data.json"
    data_file.write_text(json.dumps(samples))
    assert load_training_samples(str(data_file), str(data_dir / "images"), "v1") == samples
