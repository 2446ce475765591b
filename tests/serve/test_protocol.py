import base64
import io

import pytest
from PIL import Image
from pydantic import ValidationError

from llava.conversation import get_conv_template
from llava.serve.protocol import (
    BadImage,
    GenerateRequest,
    ImageLimits,
    decode_image,
    encode_chunk,
    encode_image,
    iter_chunks,
    stop_string,
    validation_message,
)


def _b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_decode_image_round_trips_pixels_and_converts_to_rgb():
    image = Image.new("RGBA", (7, 5), (10, 20, 30, 255))
    image.putpixel((3, 2), (200, 100, 50, 255))
    decoded = decode_image(encode_image(image), ImageLimits())
    assert decoded.mode == "RGB" and decoded.size == (7, 5)
    assert decoded.getpixel((3, 2)) == (200, 100, 50)
    assert decoded.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize(
    "data, status, message",
    [
        ("%%% not base64 %%%", 400, "images[2] is not valid base64"),
        (base64.b64encode(b"hello, I am text").decode(), 400, "images[2] is not an image"),
        ("", 400, "images[2] is empty"),
    ],
)
def test_decode_image_refuses_non_images(data, status, message):
    with pytest.raises(BadImage) as info:
        decode_image(data, ImageLimits(), index=2)
    assert info.value.status == status
    assert message in str(info.value)


def test_decode_image_refuses_formats_outside_the_allow_list():
    with pytest.raises(BadImage, match="not an image in a supported format"):
        decode_image(_b64(Image.new("RGB", (4, 4)), "TIFF"), ImageLimits())


def test_pixel_limit_is_checked_from_the_header():
    limits = ImageLimits(max_pixels=20 * 20)
    decode_image(_b64(Image.new("RGB", (20, 20))), limits)  # at the limit: fine
    with pytest.raises(BadImage) as info:
        decode_image(_b64(Image.new("RGB", (21, 20))), limits)
    assert info.value.status == 413
    assert "21x20 = 420 pixels, more than the limit of 400" in str(info.value)


def test_byte_limit_is_checked_before_and_after_decoding_base64():
    data = _b64(Image.effect_noise((64, 64), 100).convert("RGB"))
    raw_size = len(base64.b64decode(data))
    with pytest.raises(BadImage) as info:
        decode_image(data, ImageLimits(max_bytes=raw_size - 1))
    assert str(info.value) == f"images[0] is {raw_size} bytes, larger than the limit of {raw_size - 1} bytes"
    assert info.value.status == 413
    # A string far too long is refused without decoding it.
    with pytest.raises(BadImage, match="larger than the limit of 10 bytes"):
        decode_image("A" * 1000, ImageLimits(max_bytes=10))
    assert decode_image(data, ImageLimits(max_bytes=raw_size)).size == (64, 64)


def test_ndjson_chunks_are_one_json_object_per_line():
    chunks = [{"text": "a\nb", "error_code": 0}, {"text": "ü", "finished": True}]
    stream = b"".join(encode_chunk(c) for c in chunks)
    assert stream.count(b"\n") == 2  # the newline inside the text is escaped
    assert list(iter_chunks(stream.split(b"\n"))) == chunks


def test_generate_request_validation_names_the_fields():
    with pytest.raises(ValidationError) as info:
        GenerateRequest.model_validate({"prompt": "", "temperature": 3, "dart": {"reduction_ratio": 1.0, "bogus": 1}})
    message = validation_message(info.value.errors())
    for field in ("prompt", "temperature", "dart.reduction_ratio", "dart.bogus"):
        assert f"{field}:" in message
    request = GenerateRequest.model_validate({"prompt": "hi", "dart": {"max_num_trunction": None}})
    assert request.dart.model_dump(exclude_unset=True) == {"max_num_trunction": None}


def test_stop_string_follows_llava():
    assert stop_string(get_conv_template("llava_v1")) == "</s>"
    assert stop_string(get_conv_template("llava_v0")) == "###"
    assert stop_string(get_conv_template("mpt")) == "<|im_end|>"
