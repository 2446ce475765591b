"""What the controller, the model workers and their clients send each other.

Transport: JSON over HTTP POST, endpoint names as in LLaVA (`/register_worker`, `/worker_generate_stream`, ...).
A generation streams back as **newline-delimited JSON** (NDJSON, `application/x-ndjson`): one JSON object
per line, each ending with `\\n` (LLaVA separated its chunks with `b"\\0"`; a newline lets any line reader
parse the stream). Every chunk has `text` (the whole answer so far) and `error_code` (0 = fine); the last
one has `finished: true` and, for a successful answer, the pruning report (see `model_worker`).

Images travel inside the request as base64 strings (PNG, JPEG, ...), never as paths: a worker does not
open files named by a client. `decode_image` is the single place where client bytes become a PIL image,
with byte-size, pixel-count and format limits checked before the pixels are decoded.

This module imports neither torch nor gradio, so the controller and the clients stay light.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import Conversation, SeparatorStyle
from llava.pruning_settings import SETTINGS, SPARSE_FLAG, Setting

NDJSON_MEDIA_TYPE = "application/x-ndjson"

# Image formats a worker decodes; anything else is refused before a decoder runs.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


class ErrorCode:
    """`error_code` values in streamed chunks (0 is success, as in LLaVA)."""

    OK = 0
    GENERATION_FAILED = 1
    WORKER_LOST = 2  # the worker's stream broke off (it died or the connection dropped) before the last chunk


def stop_string(conv: Conversation) -> str | None:
    """LLaVA's stop string for a template: its turn separator (sep2 for two-separator templates)."""
    return conv.sep if conv.sep_style in (SeparatorStyle.SINGLE, SeparatorStyle.MPT) else conv.sep2


# -- NDJSON ------------------------------------------------------------------------------------------


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(chunk, ensure_ascii=False).encode() + b"\n"


def iter_chunks(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """Parse an NDJSON stream given line by line (e.g. httpx's `iter_lines()`); blank lines are skipped."""
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode()
        if line.strip():
            yield json.loads(line)


# -- images ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """Per-image limits a worker enforces (defaults: 10 MiB encoded, 4096 x 4096 pixels, 4 images)."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_images: int = 4


class BadImage(ValueError):
    """A client image that cannot be used; `status` is the HTTP status to answer with (400 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def encode_image(image: Image.Image, image_format: str = "PNG") -> str:
    """Base64 of the image in `image_format` (PNG keeps pixels exact)."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_image(data: str, limits: ImageLimits, index: int = 0) -> Image.Image:
    """A client's base64 image as an RGB PIL image, or BadImage naming `images[index]` and the problem.

    Checks, in order: the encoded length (before decoding anything), base64 validity, the decoded byte
    size, the format (from the header), the pixel count (from the header, before the pixels are decoded),
    then decodes the pixels.
    """
    name = f"images[{index}]"
    # base64 grows 4/3; reject an oversized string before allocating its decoded bytes.
    if len(data) > (limits.max_bytes * 4) // 3 + 4:
        raise BadImage(f"{name} is larger than the limit of {limits.max_bytes} bytes", status=413)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadImage(f"{name} is not valid base64") from None
    if len(raw) > limits.max_bytes:
        raise BadImage(f"{name} is {len(raw)} bytes, larger than the limit of {limits.max_bytes} bytes", status=413)
    if not raw:
        raise BadImage(f"{name} is empty")
    try:
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:  # PIL's own ceiling, far above ours
        raise BadImage(f"{name} has too many pixels: {exc}", status=413) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{name} is not an image in a supported format ({', '.join(IMAGE_FORMATS)}): {exc}") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise BadImage(f"{name} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise BadImage(
            f"{name} is {width}x{height} = {width * height} pixels, more than the limit of {limits.max_pixels}",
            status=413,
        )
    try:
        return image.convert("RGB")  # decodes the pixels
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImage(f"{name} could not be decoded: {exc}") from None


# -- requests ----------------------------------------------------------------------------------------


class _Strict(BaseModel):
    """Unknown fields are errors (a misspelt setting must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class WorkerStatus(BaseModel):
    """What a worker reports about itself (`/worker_get_status`, and inside `/register_worker`)."""

    model_names: list[str]
    speed: float = Field(1.0, gt=0)
    queue_length: int = Field(0, ge=0)


class RegisterWorkerRequest(_Strict):
    worker_name: str = Field(min_length=1, max_length=512, description="the worker's address, http://host:port")
    check_heart_beat: bool = True
    worker_status: WorkerStatus | None = None


class HeartBeatRequest(_Strict):
    worker_name: str = Field(min_length=1, max_length=512)
    queue_length: int = Field(ge=0)


class ModelRequest(_Strict):
    model: str = Field(min_length=1, max_length=512)


def _override_field(setting: Setting):
    """A request field for one row of the settings table: optional, ranged as the table says."""
    bounds: dict[str, Any] = {}
    if setting.minimum is not None:
        bounds["ge"] = setting.minimum
    if setting.maximum is not None:
        bounds["lt" if setting.kind is float else "le"] = setting.maximum
    if setting.kind is str:
        bounds.update(min_length=1, max_length=64)
    return (setting.kind | None, Field(None, description=setting.help, **bounds))


# Per-request DART settings; a field left out keeps the worker's default (flag names of the DART release,
# from `llava.pruning_settings`). `max_num_trunction: null` means "budget from reduction_ratio". Ranges are
# checked here; that K is below the model's depth and that the method exists are checked against the loaded
# model (also a 4xx).
DartOverrides = create_model(
    "DartOverrides",
    __base__=_Strict,
    **{SPARSE_FLAG: (bool | None, None)},
    **{setting.name: _override_field(setting) for setting in SETTINGS if setting.per_request},
)


class ChatMessage(_Strict):
    """One turn of a conversation; `<image>` in `content` marks where an image goes (the request's images in
    order of appearance)."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerateRequest(_Strict):
    """`/worker_generate_stream`: exactly one of `prompt` (the full templated prompt with one `<image>` per image,
    as LLaVA's worker takes it; LLaVA checkpoints only) or `messages` (the worker applies the model's own
    template: LLaVA's conversation template or Qwen's chat template), ending with a user turn."""

    model: str | None = Field(None, max_length=512)
    prompt: str | None = Field(None, min_length=1)
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=256)
    images: list[str] = Field(default_factory=list)
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    stop: str | None = Field(None, max_length=64)
    dart: DartOverrides | None = None

    @model_validator(mode="after")
    def _one_prompt_form(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of `prompt` (a templated prompt) and `messages` (a conversation)")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError("messages: the last message must be the user's (the turn to answer)")
        return self

    def placeholder_count(self) -> int:
        """`<image>` placeholders in the prompt or the messages."""
        if self.prompt is not None:
            return self.prompt.count(DEFAULT_IMAGE_TOKEN)
        return sum(message.content.count(DEFAULT_IMAGE_TOKEN) for message in self.messages)

    def text_length(self) -> int:
        if self.prompt is not None:
            return len(self.prompt)
        return sum(len(message.content) for message in self.messages)


def validation_message(errors: Iterable[dict[str, Any]]) -> str:
    """pydantic / FastAPI validation errors as one line naming each field: "temperature: Input should be ..."."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "request"
        parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
