"""What the controller, the model workers and their clients send each other.

Transport: JSON over HTTP POST, endpoint names as in LLaVA (`/register_worker`, `/worker_generate_stream`, ...).
A generation streams back as **newline-delimited JSON** (NDJSON, `application/x-ndjson`): one JSON object
per line, each ending with `\\n` (LLaVA separated its chunks with `b"\\0"`; a newline lets any line reader
parse the stream). Every chunk has `text` (the whole answer so far) and `error_code` (0 = fine); the last
one has `finished: true` and, for a successful answer, the pruning report (see `model_worker`).

Images travel inside the request as base64 strings (PNG, JPEG, ...), never as paths: a worker does not
open files named by a client. `decode_image` is the single place where client bytes become a PIL image,
with byte-size, pixel-count and format limits checked before the pixels are decoded.

Every JSON body or line is parsed strictly (`loads_json`: no NaN / Infinity, a bounded nesting depth) and
every number is finite and bounded, in both directions: what a worker streams back is checked
(`parse_stream_chunk`) before a client draws or shows it.

This module imports neither torch nor gradio, so the controller and the clients stay light.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from PIL import Image
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import stop_string  # noqa: F401  (re-exported: the web page and clients import it here)
from llava.pruning_settings import SETTINGS, SPARSE_FLAG, Setting

NDJSON_MEDIA_TYPE = "application/x-ndjson"

# Image formats a worker decodes; anything else is refused before a decoder runs.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


class ErrorCode:
    """`error_code` values in streamed chunks (0 is success, as in LLaVA)."""

    OK = 0
    GENERATION_FAILED = 1
    WORKER_LOST = 2  # the worker's stream broke off (it died or the connection dropped) before the last chunk
    BAD_REPLY = 3  # the worker sent something that is not a stream of chunks (the controller ended the stream)


# -- JSON --------------------------------------------------------------------------------------------


class BadJson(ValueError):
    """Bytes that are not strict JSON; the message says why ("not valid JSON (...)", "nested too deeply")."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def loads_json(data: bytes | str) -> Any:
    """Strict JSON: NaN and Infinity are refused, and so is nesting deep enough to exhaust the parser's
    recursion (a RecursionError, which callers would otherwise turn into a 500)."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise BadJson("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, our NaN / Infinity
        raise BadJson(f"not valid JSON ({exc})") from None


# -- NDJSON ------------------------------------------------------------------------------------------

# The longest NDJSON line a reader takes: a last chunk carries every image's kept indices (a Qwen image
# has up to 16384 tokens), far below this.
MAX_STREAM_LINE_BYTES = 4 * 1024 * 1024


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(chunk, ensure_ascii=False).encode() + b"\n"


def iter_chunks(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """Parse an NDJSON stream given line by line (e.g. httpx's `iter_lines()`); blank lines are skipped."""
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode()
        if line.strip():
            yield loads_json(line)


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
    """Unknown fields are errors (a misspelt setting must not be silently ignored); no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def worker_base_url(value: str) -> str:
    """`value` as a plain http(s) base URL, "scheme://host[:port]" (a trailing "/" dropped), or ValueError
    naming what is wrong. The controller POSTs to this address: nothing but a host and a port may steer it."""
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL such as http://10.0.0.5:40000")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password")
    if not parts.hostname:
        raise ValueError("must name a host")
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError as exc:
        raise ValueError(f"has a bad port ({exc})") from None
    if value.split("://", 1)[1] not in (parts.netloc, parts.netloc + "/"):
        raise ValueError("must be the worker's base URL (scheme://host:port), without a path, query or fragment")
    return f"{parts.scheme}://{parts.netloc}"


WorkerAddress = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(worker_base_url)]
ModelName = Annotated[str, Field(min_length=1, max_length=512)]

# A worker's relative speed (LLaVA's workers report 1) and queue: bounded so that dispatch arithmetic stays
# finite and no single registration can outweigh every other worker without limit.
MAX_WORKER_SPEED = 1000.0
MAX_QUEUE_LENGTH = 1_000_000


class WorkerStatus(BaseModel):
    """What a worker reports about itself (`/worker_get_status`, and inside `/register_worker`)."""

    model_config = ConfigDict(allow_inf_nan=False)

    model_names: list[ModelName] = Field(min_length=1, max_length=64)
    speed: float = Field(1.0, gt=0, le=MAX_WORKER_SPEED)
    queue_length: int = Field(0, ge=0, le=MAX_QUEUE_LENGTH)


class RegisterWorkerRequest(_Strict):
    worker_name: WorkerAddress = Field(description="the worker's base URL, http://host:port")
    check_heart_beat: bool = Field(True, description="accepted as LLaVA's workers send it, and ignored: every "
                                   "registration expires without heartbeats")
    worker_status: WorkerStatus | None = None


class HeartBeatRequest(_Strict):
    worker_name: WorkerAddress
    queue_length: int = Field(ge=0, le=MAX_QUEUE_LENGTH)


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


# -- what a worker streams back -------------------------------------------------------------------------

# Bounds on a pruning report: a patch grid of at most 256 x 256 cells (LLaVA's is 24 x 24; a Qwen image has at
# most 16384 tokens by default) keeps an overlay small; token counts and timings are just kept sane.
MAX_GRID_CELLS = 256 * 256
MAX_REPORTED_IMAGES = 64
MAX_REPORTED_TOKENS = 10**7


def _bounded_grid(grid: list[int]) -> list[int]:
    rows, cols = grid
    if rows * cols > MAX_GRID_CELLS:
        raise ValueError(f"{rows}x{cols} has more than {MAX_GRID_CELLS} cells")
    return grid


PatchGrid = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2),
                      AfterValidator(_bounded_grid)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_REPORTED_TOKENS)]
Seconds = Annotated[float, Field(ge=0, le=10**6)]


class _Reported(BaseModel):
    """A part of a worker's reply: checked field by field, fields added later let through."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ReportedDartConfig(_Reported):
    method: str = Field("dart", min_length=1, max_length=64)


class PruningReport(_Reported):
    """A last chunk's `pruning` (see `llava.serve.model_worker`), as far as a client draws or shows it."""

    enabled: bool = False
    pruned: bool = False
    kept_image_tokens: TokenCount = 0
    image_tokens: TokenCount = 0
    kept_indices: list[list[int] | None] | None = Field(None, max_length=MAX_REPORTED_IMAGES)
    patch_grid: PatchGrid | None = None
    patch_grids: list[PatchGrid | None] | None = Field(None, max_length=MAX_REPORTED_IMAGES)
    image_aspect_ratio: str | None = Field(None, max_length=64)
    selection_seconds: Seconds | None = None
    prefill_seconds: Seconds | None = None
    config: ReportedDartConfig | None = None

    @model_validator(mode="after")
    def _kept_indices_fit_their_grids(self):
        if self.kept_indices is None:
            return self
        grids = self.patch_grids if self.patch_grids is not None else [self.patch_grid] * len(self.kept_indices)
        if len(grids) != len(self.kept_indices):
            raise ValueError(f"kept_indices has {len(self.kept_indices)} images but patch_grids {len(grids)}")
        for i, (kept, grid) in enumerate(zip(self.kept_indices, grids)):
            cells = grid[0] * grid[1] if grid else MAX_GRID_CELLS
            if kept and (len(kept) > cells or min(kept) < 0 or max(kept) >= cells):
                raise ValueError(f"kept_indices[{i}] must be at most {cells} indices in [0, {cells})")
        return self


class StreamChunk(_Reported):
    """One NDJSON line of a generation stream (see the module docstring)."""

    text: str
    error_code: int = ErrorCode.OK
    error: str | None = Field(None, max_length=4096)
    finished: bool = False
    finish_reason: str | None = Field(None, max_length=64)
    usage: dict[str, TokenCount] | None = None
    pruning: PruningReport | None = None


class ModelDetails(_Reported):
    """The fields of a worker's /model_details that a client builds requests and controls from."""

    model_name: ModelName | None = None
    prompt_format: str | None = Field(None, max_length=32)
    conv_mode: str | None = Field(None, max_length=64)
    ratio_budget: bool = False  # the family's DART budget is the reduction ratio alone
    num_hidden_layers: int = Field(ge=1, le=10_000)
    image_tokens: TokenCount
    limits: dict[str, int | float] = Field(default_factory=dict)


class BadChunk(ValueError):
    """A stream line that is not a usable chunk; the message names the problem (no input values)."""


def parse_stream_chunk(line: bytes | str) -> dict[str, Any]:
    """One line of a worker's stream as a checked chunk dict (the fields it sent, types as declared)."""
    try:
        return StreamChunk.model_validate(loads_json(line)).model_dump(exclude_unset=True)
    except BadJson as exc:
        raise BadChunk(f"a line is {exc}") from None
    except ValidationError as exc:
        raise BadChunk(validation_message(exc.errors())) from None


def validation_message(errors: Iterable[dict[str, Any]]) -> str:
    """pydantic / FastAPI validation errors as one line naming each field: "temperature: Input should be ..."."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "request"
        parts.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
