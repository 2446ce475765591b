"""mm_utils against independent computations: SentencePiece itself for token ids, hand geometry for images."""

import base64
import json
import random
from io import BytesIO
from types import SimpleNamespace

import pytest
import sentencepiece as spm
import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPImageProcessorPil, StoppingCriteriaList

from llava.constants import IMAGE_TOKEN_INDEX
from llava.mm_utils import (
    KeywordsStoppingCriteria,
    divide_to_patches,
    expand2square,
    get_anyres_image_grid_shape,
    get_model_name_from_path,
    load_image,
    load_image_from_base64,
    load_image_processor,
    process_anyres_image,
    process_images,
    resize_and_pad_image,
    select_best_resolution,
    tokenizer_image_token,
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # LLaVA-1.6's list


# -- tokenizer fixtures ---------------------------------------------------------------------------------

_WORDS = (
    "a chat between curious user and an artificial intelligence assistant the gives helpful detailed polite "
    "answers to questions what is this picture image describe cat dog red blue sky tree sitting on table"
).split()


def _train_sentencepiece(directory):
    random.seed(0)
    corpus = [" ".join(random.choices(_WORDS, k=12)) + random.choice(".?!:") for _ in range(2000)]
    # Settings as in Llama's tokenizer.model: BPE (transformers 5's LlamaTokenizer is BPE-only; a unigram
    # model gets converted and segments differently), byte fallback, no normalisation, spaces kept.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_prefix=str(directory / "tokenizer"),
        model_type="bpe",
        vocab_size=300,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )


def _write_tokenizer(directory, **config):
    directory.mkdir()
    _train_sentencepiece(directory)
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", **config}))
    return AutoTokenizer.from_pretrained(directory, use_fast=False)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    # LLaVA checkpoints' tokenizer_config.json set add_bos_token explicitly (see the no-BOS test below).
    return _write_tokenizer(tmp_path_factory.mktemp("tok") / "bos", add_bos_token=True)


@pytest.fixture(scope="module")
def sp(tokenizer):
    return spm.SentencePieceProcessor(model_file=tokenizer.vocab_file)


# -- tokenizer_image_token ------------------------------------------------------------------------------


def test_chunk_tokens_match_sentencepiece(tokenizer, sp):
    # The reference: plain SentencePiece with its dummy prefix on every chunk. Hence "\nWhat" starts with
    # "▁" then "<0x0A>" (Llama's famous 29871, 13), exactly what LLaVA's slow tokenizer produced.
    for chunk in ["A chat between a curious user. USER: ", "\nWhat is this? ASSISTANT:", "\n", "sky 123"]:
        assert tokenizer(chunk, add_special_tokens=False).input_ids == sp.encode(chunk)
    assert sp.id_to_piece(sp.encode("\nWhat")[:2]) == ["▁", "<0x0A>"]


def test_tokenizer_image_token_single_image(tokenizer, sp):
    head = "A chat between a curious user and an artificial intelligence assistant. USER: "
    tail = "\nWhat is this? ASSISTANT:"
    ids = tokenizer_image_token(head + "<image>" + tail, tokenizer)
    assert ids == [1] + sp.encode(head) + [IMAGE_TOKEN_INDEX] + sp.encode(tail)
    assert ids.count(tokenizer.bos_token_id) == 1


def test_tokenizer_image_token_image_first_and_repeated(tokenizer, sp):
    # The plain template starts with the image: the first chunk is empty and only contributes the BOS.
    assert tokenizer_image_token("<image>\nsky\n", tokenizer) == [1, IMAGE_TOKEN_INDEX] + sp.encode("\nsky\n")
    ids = tokenizer_image_token("a<image>b<image><image>c", tokenizer)
    expected = [1] + sp.encode("a") + [IMAGE_TOKEN_INDEX] + sp.encode("b") + [IMAGE_TOKEN_INDEX] * 2 + sp.encode("c")
    assert ids == expected


def test_tokenizer_image_token_equals_chunks_without_special_tokens(tokenizer):
    prompt = "USER: <image>\nDescribe the picture. ASSISTANT: a cat</s>USER: and the dog? ASSISTANT:"
    head, tail = prompt.split("<image>")
    expected = [1] + tokenizer(head, add_special_tokens=False).input_ids + [IMAGE_TOKEN_INDEX]
    expected += tokenizer(tail, add_special_tokens=False).input_ids
    assert tokenizer_image_token(prompt, tokenizer) == expected
    assert tokenizer.eos_token_id in expected  # "</s>" inside a chunk is parsed as the special token


def test_tokenizer_image_token_without_bos(tmp_path, sp):
    # transformers 5: with no add_bos_token in tokenizer_config.json (and no tokenizer.json), LlamaTokenizer
    # adds no BOS, whatever its docstring says. Then the prompt gets none either, and no stray ids appear.
    tokenizer = _write_tokenizer(tmp_path / "nobos")
    assert tokenizer("hi").input_ids == sp.encode("hi")
    assert tokenizer_image_token("a<image>\nb", tokenizer) == sp.encode("a") + [IMAGE_TOKEN_INDEX] + sp.encode("\nb")


def test_tokenizer_image_token_return_tensors(tokenizer):
    ids = tokenizer_image_token("a<image>b", tokenizer, return_tensors="pt")
    assert ids.dtype == torch.long and ids.tolist() == tokenizer_image_token("a<image>b", tokenizer)
    with pytest.raises(ValueError, match="'np'"):
        tokenizer_image_token("a<image>b", tokenizer, return_tensors="np")


def test_transformers5_does_not_double_a_leading_space(tokenizer, sp):
    # A canary for a transformers 5 difference from SentencePiece (and from LLaVA-era tokenizers): the
    # Metaspace pre-tokenizer adds the dummy "▁" only when the text does not already start with a space,
    # so a chunk beginning with " " loses one "▁". LLaVA's templates put "\n" after <image>, not " ".
    assert tokenizer(" sky", add_special_tokens=False).input_ids == sp.encode("sky")
    assert sp.encode(" sky") != sp.encode("sky")


# -- stopping criteria ----------------------------------------------------------------------------------


def _encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def test_stopping_criteria_per_row(tokenizer):
    prompt = torch.tensor([[1] + _encode(tokenizer, "USER: hi ASSISTANT:")] * 2)
    criteria = KeywordsStoppingCriteria(["</s>"], tokenizer, prompt)
    assert [ids.tolist() for ids in criteria.keyword_ids] == [[tokenizer.eos_token_id]]
    generated = torch.tensor([[tokenizer.eos_token_id], _encode(tokenizer, "a")[-1:]])
    done = criteria(torch.cat([prompt, generated], dim=1), None)
    assert done.dtype == torch.bool and done.tolist() == [True, False]
    assert StoppingCriteriaList([criteria])(torch.cat([prompt, generated], dim=1), None).tolist() == [True, False]


def test_stopping_criteria_text_match_only_in_generated_tail(tokenizer):
    # "###" is in the prompt already; only the generated tokens may trigger the stop.
    prompt = torch.tensor([[1] + _encode(tokenizer, "Human: hi###Assistant:")])
    criteria = KeywordsStoppingCriteria(["###"], tokenizer, prompt)
    not_yet = torch.cat([prompt, torch.tensor([_encode(tokenizer, " cat")[-1:]])], dim=1)
    assert criteria(not_yet, None).tolist() == [False]
    # Tokenized in context, "###" does not start with "▁", so the keyword ids do not match: the text does.
    answer = torch.tensor([_encode(tokenizer, "cat###")])
    assert criteria(torch.cat([prompt, answer], dim=1), None).tolist() == [True]


# -- images ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_processor(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip336")
    CLIPImageProcessorPil(
        size={"shortest_edge": 336},
        crop_size={"height": 336, "width": 336},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    ).save_pretrained(directory)
    return load_image_processor(directory)


def test_load_image_processor_is_pil_backend(image_processor):
    assert type(image_processor) is CLIPImageProcessorPil
    assert image_processor.crop_size["height"] == 336 and image_processor.size["shortest_edge"] == 336


def test_load_image_from_base64():
    buffer = BytesIO()
    Image.new("RGB", (3, 2), (1, 2, 3)).save(buffer, format="PNG")
    image = load_image_from_base64(base64.b64encode(buffer.getvalue()).decode())
    assert image.size == (3, 2) and image.getpixel((2, 1)) == (1, 2, 3)


def test_an_image_past_the_decompression_bomb_limit_is_a_value_error(tmp_path, write_bomb_png):
    from llava.eval.core.questions import ImageRef

    bomb = write_bomb_png(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=rf"cannot read image {bomb}: too large \(Image size \(400000000 pixels\)"):
        load_image(str(bomb))
    with pytest.raises(ValueError, match=r"cannot decode the base64 image: too large"):
        ImageRef(base64=base64.b64encode(bomb.read_bytes()).decode()).open()


@pytest.mark.parametrize(
    "size, box",
    [((6, 3), (0, 1, 6, 4)), ((3, 6), (1, 0, 4, 6)), ((5, 2), (0, 1, 5, 3))],  # offsets rounded down
)
def test_expand2square_centers_image(size, box):
    image = Image.new("RGB", size, (255, 0, 0))
    square = expand2square(image, (10, 20, 30))
    side = max(size)
    assert square.size == (side, side)
    for x in range(side):
        for y in range(side):
            inside = box[0] <= x < box[2] and box[1] <= y < box[3]
            assert square.getpixel((x, y)) == ((255, 0, 0) if inside else (10, 20, 30))


def test_expand2square_keeps_square_image():
    image = Image.new("RGB", (4, 4))
    assert expand2square(image, (0, 0, 0)) is image


def test_process_images_pad(image_processor):
    images = [Image.new("RGB", (400, 200), (255, 255, 255)), Image.new("RGB", (100, 300), (255, 255, 255))]
    pixels = process_images(images, image_processor, SimpleNamespace(image_aspect_ratio="pad"))
    assert pixels.shape == (2, 3, 336, 336)
    mean, std = torch.tensor(CLIP_MEAN)[:, None], torch.tensor(CLIP_STD)[:, None]
    # Padding is the mean colour rounded down to 8 bits, so it normalises to just below 0.
    padding = (torch.tensor([int(m * 255) for m in CLIP_MEAN])[:, None] / 255 - mean) / std
    assert torch.allclose(pixels[0, :, 0, :], padding.expand(3, 336), atol=1e-5)  # top band of the wide image
    assert torch.allclose(pixels[1, :, :, 0], padding.expand(3, 336), atol=1e-5)  # left band of the tall one
    assert torch.allclose(pixels[0, :, 168, :], ((1 - mean) / std).expand(3, 336), atol=1e-5)  # the image


def test_process_images_square_uses_processor(image_processor):
    images = [Image.new("RGB", (400, 200)), Image.new("RGB", (50, 60))]
    for cfg in (SimpleNamespace(), SimpleNamespace(image_aspect_ratio="square")):
        assert process_images(images, image_processor, cfg).shape == (2, 3, 336, 336)


def test_select_best_resolution():
    # 800x400 fits 672x336 exactly (no waste) and keeps as many pixels as 672x672 / 1008x336.
    assert select_best_resolution((800, 400), GRID_PINPOINTS) == (672, 336)
    assert select_best_resolution((300, 900), GRID_PINPOINTS) == (336, 1008)
    assert select_best_resolution((1000, 1000), GRID_PINPOINTS) == (672, 672)


def test_resize_and_pad_image():
    padded = resize_and_pad_image(Image.new("RGB", (100, 100), (255, 255, 255)), (672, 336))
    assert padded.size == (672, 336)
    # 100x100 -> 336x336, centered horizontally: black bars of 168 on each side.
    assert padded.getpixel((167, 100)) == (0, 0, 0) and padded.getpixel((168, 100)) == (255, 255, 255)
    assert padded.getpixel((503, 100)) == (255, 255, 255) and padded.getpixel((504, 100)) == (0, 0, 0)


def test_divide_to_patches_row_major():
    image = Image.new("RGB", (4, 2))
    image.putpixel((2, 0), (9, 9, 9))
    image.putpixel((0, 1), (7, 7, 7))
    patches = divide_to_patches(image, 1)
    assert len(patches) == 8 and all(p.size == (1, 1) for p in patches)
    assert patches[2].getpixel((0, 0)) == (9, 9, 9) and patches[4].getpixel((0, 0)) == (7, 7, 7)


def test_anyres_grid_shape_and_patch_count(image_processor):
    assert get_anyres_image_grid_shape((800, 400), GRID_PINPOINTS, 336) == (2, 1)
    assert get_anyres_image_grid_shape((1000, 1000), str(GRID_PINPOINTS), 336) == (2, 2)
    patches = process_anyres_image(Image.new("RGB", (800, 400)), image_processor, GRID_PINPOINTS)
    assert patches.shape == (1 + 2, 3, 336, 336)


def test_process_images_anyres(image_processor):
    cfg = SimpleNamespace(image_aspect_ratio="anyres", image_grid_pinpoints=GRID_PINPOINTS)
    same = process_images([Image.new("RGB", (800, 400)), Image.new("RGB", (400, 200))], image_processor, cfg)
    assert same.shape == (2, 3, 3, 336, 336)
    mixed = process_images([Image.new("RGB", (800, 400)), Image.new("RGB", (1000, 1000))], image_processor, cfg)
    assert [x.shape[0] for x in mixed] == [3, 5]


def test_process_images_errors(image_processor):
    image = [Image.new("RGB", (10, 10))]
    with pytest.raises(ValueError, match="'crop'"):
        process_images(image, image_processor, SimpleNamespace(image_aspect_ratio="crop"))
    with pytest.raises(ValueError, match="image_grid_pinpoints"):
        process_images(image, image_processor, SimpleNamespace(image_aspect_ratio="anyres"))


# -- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, name",
    [
        ("liuhaotian/llava-v1.5-7b", "llava-v1.5-7b"),
        ("/ckpt/llava-v1.5-13b/", "llava-v1.5-13b"),
        ("runs/llava-lora/checkpoint-500", "llava-lora_checkpoint-500"),
        ("llava-v1.5-7b", "llava-v1.5-7b"),
    ],
)
def test_get_model_name_from_path(path, name):
    assert get_model_name_from_path(path) == name
