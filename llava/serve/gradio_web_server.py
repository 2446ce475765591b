r"""The Gradio web UI: chat about an image, with DART controls and a view of the patches DART kept.

    python -m llava.serve.gradio_web_server --controller-url http://127.0.0.1:10000 [--port 7860] \
        [--model-list-mode once|reload] [--log-dir logs]

Like LLaVA's demo: image upload + chat, conversation templates, temperature / top-p / max tokens,
regenerate / clear and upvote / downvote / flag, conversations logged as JSON lines under `--log-dir`
(`YYYY-MM-DD-conv.json`, images under `serve_images/`). Beyond LLaVA: a DART switch with budget (max kept
or ratio), layer K and pivot settings sent with each request, and, next to the chat, the image as the model
saw it with the kept patches highlighted, plus the prefill time and the number of image tokens kept.

The page talks to the controller (which worker serves the model) and then streams from that worker
(NDJSON, see `llava.serve.protocol`). A worker that cannot be reached is dropped by a controller refresh
and the request is tried once more on another worker; one that breaks off mid-answer is reported in the chat
and dropped the same way.

Uploads reach the handler as files, unopened: only a regular file inside Gradio's upload folder (a file
Gradio itself received) is opened, whatever path a hand-made request names; the size is read from the
header, images over 4096x4096 are refused with a plain message (JPEG is decoded at reduced scale first),
and the chat keeps at most 2048 px a side (and no more pixels than the model's worker accepts).

What a worker streams back is checked (`llava.serve.client`) before the page draws or shows it, and
error messages are shown without memory addresses, server paths or internal addresses (`shown_error`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import random
import re
import stat
import time
import warnings
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from llava.constants import DEFAULT_IMAGE_TOKEN, DEFAULT_MODEL_PATH
from llava.conversation import Conversation, conv_templates, get_conv_template
from llava.data.questions import QA, QUESTION_TYPES, prompt
from llava.data.scenes import Scene, sample_scene
from llava.data.shapes import render
from llava.eval.core.prompting import infer_conv_mode
from llava.pruning_settings import METHOD_LABELS, method_label
from llava.serve import DEFAULT_CONTROLLER_PORT, DEFAULT_HOST, DEFAULT_WEB_PORT, configure_logging
from llava.serve.client import (
    BadReply,
    ServeError,
    get_worker_address,
    list_models,
    model_details,
    stream_generate,
)
from llava.serve.overlay import draw_kept_patches, side_by_side
from llava.serve.protocol import IMAGE_FORMATS, ErrorCode, encode_image, stop_string

logger = logging.getLogger("llava.serve.gradio_web_server")

AUTO_TEMPLATE = "auto (from the model name)"
BUDGET_MAX_KEPT = "max kept"
BUDGET_RATIO = "reduction ratio"
IMAGE_MODES = ["Crop", "Resize", "Pad", "Default"]
MAX_TEXT_CHARS = 1536  # LLaVA's demo cut: 1536 characters, 1200 with an image
MAX_TEXT_CHARS_WITH_IMAGE = 1200
CURSOR = "▌"
# Uploads: at most this many pixels are ever decoded (the workers' default limit, about 50 MB as RGB); a JPEG
# is decoded at 1/2, 1/4 or 1/8 scale when that is enough, so larger JPEG photos still work.
MAX_DECODE_SIDE = 4096
MAX_DECODE_PIXELS = MAX_DECODE_SIDE * MAX_DECODE_SIDE
# What the chat keeps (and sends): no model here looks at more (LLaVA resizes to 336 px).
MAX_IMAGE_SIDE = 2048


@dataclasses.dataclass
class ServerConfig:
    controller_url: str
    log_dir: Path
    model_list_mode: str = "once"
    request_timeout: float = 120.0


@dataclasses.dataclass
class ChatState:
    """One browser session: the conversation (LLaVA's `Conversation`, images inside the first user message),
    whether its last answer failed (a failed exchange is dropped before the next question), and each
    answer's pruning line, shown under it but never part of the prompt (keyed by message index)."""

    conv: Conversation | None = None
    skip_next: bool = False
    failed: bool = False
    last_pruning: dict[str, Any] | None = None
    answer_notes: dict[int, str] = dataclasses.field(default_factory=dict)

    def new_conversation(self, conv: Conversation) -> None:
        self.conv = conv
        self.answer_notes = {}
        self.last_pruning = None

    def drop_last_exchange(self) -> None:
        del self.conv.messages[-2:]
        self.answer_notes = {i: note for i, note in self.answer_notes.items() if i < len(self.conv.messages)}


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """The sidebar's values, in the order of the `settings` components."""

    temperature: float = 0.2
    top_p: float = 0.7
    max_new_tokens: int = 512
    dart_on: bool = True
    budget_mode: str = BUDGET_MAX_KEPT
    max_kept: int = 128
    reduction_ratio: float = 0.778
    pruned_layer: int = 2
    pivot_image_token: int = 4
    pivot_text_token: int = 4
    pruning_method: str = "dart"

    def dart_request(self) -> dict[str, Any]:
        """The request's `dart` object."""
        if not self.dart_on:
            return {"sparse": False}
        return {
            "sparse": True,
            "pruned_layer": int(self.pruned_layer),
            "reduction_ratio": float(self.reduction_ratio),
            "max_num_trunction": int(self.max_kept) if self.budget_mode == BUDGET_MAX_KEPT else None,
            "pivot_image_token": int(self.pivot_image_token),
            "pivot_text_token": int(self.pivot_text_token),
            "pruning_method": self.pruning_method,
        }


# -- conversation -> chatbot ---------------------------------------------------------------------------


def _message_text(message) -> str:
    text = message[0] if isinstance(message, tuple) else message
    return (text or "").replace("<image>", "").strip()


def to_chatbot(state: ChatState) -> list[dict[str, str]]:
    """Gradio 6 `Chatbot` messages ({role, content}) for the conversation after its template's examples."""
    conv = state.conv
    if conv is None:
        return []
    messages = []
    for i, (_, message) in enumerate(conv.messages[conv.offset:], start=conv.offset):
        role = "user" if (i - conv.offset) % 2 == 0 else "assistant"
        if role == "assistant" and message is None:
            continue
        text = _message_text(message)
        if role == "user" and isinstance(message, tuple) and not text:
            text = "(image)"
        if role == "assistant" and not text:
            text = "*(empty answer)*"
        if i in state.answer_notes:
            text += f"\n\n*{state.answer_notes[i]}*"
        messages.append({"role": role, "content": text})
    return messages


EXAMPLE_TYPES = ("color", "count", "relation")


EMBEDDED_DEFAULT_NAME = Path(DEFAULT_MODEL_PATH).name  # the name its worker serves it under by default
EMBEDDED_DEFAULT_HINT = (f"\n\n**{EMBEDDED_DEFAULT_NAME}**, the embedded default, answers short questions about "
                         "generated scenes asked as the examples below ask them (with the short-answer instruction); "
                         "open questions such as \"What is in the picture?\" get poor answers.")


def example_questions(seed: int = 0) -> list[tuple[Scene, QA]]:
    """Held-out generated scenes, each with a question about it in LLaVA-1.5's short-answer form: the form
    the embedded default was trained on (an open question such as "What is in the picture?" is not)."""
    rng, examples = random.Random(seed), []
    for kind in EXAMPLE_TYPES:
        qa = None
        while qa is None:
            scene = sample_scene(rng, split="eval")
            qa = QUESTION_TYPES[kind](scene, rng)
        examples.append((scene, qa))
    return examples


def example_inputs(folder: Path) -> list[list[str]]:
    """[image path, question] rows for the page's examples, the images rendered into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (scene, qa) in enumerate(example_questions()):
        path = folder / f"example_{i}_{qa.kind}.png"
        render(scene).save(path)
        rows.append([str(path), prompt(qa)])
    return rows


def template_name(choice: str, model: str | None, details: dict[str, Any] | None = None) -> str:
    """The template picked on the page; "auto" takes the one the model's worker prompts with (what its
    checkpoint records, if this page knows it), else LLaVA's guess from the model name."""
    if choice != AUTO_TEMPLATE:
        return choice
    reported = (details or {}).get("conv_mode")
    return reported if reported in conv_templates else infer_conv_mode(model or "")


def format_stats(final: dict[str, Any]) -> str:
    """The per-answer line under the overlay: kept tokens, prefill time, pruning time, tokens written."""
    pruning = final.get("pruning") or {}
    kept, total = pruning.get("kept_image_tokens", 0), pruning.get("image_tokens", 0)
    parts = []
    if total:
        pruned = 100 * (1 - kept / total)
        mode = "DART on" if pruning.get("pruned") else "DART off"
        parts.append(f"**{mode}**: kept **{kept} / {total}** image tokens ({pruned:.1f}% pruned)")
    else:
        parts.append("no image tokens in this prompt")
    if pruning.get("prefill_seconds") is not None:
        parts.append(f"prefill **{pruning['prefill_seconds']:.3f} s**")
    if pruning.get("pruned"):
        parts.append(f"selection {1000 * pruning.get('selection_seconds', 0.0):.1f} ms")
    usage = final.get("usage") or {}
    if "completion_tokens" in usage:
        parts.append(f"{usage['completion_tokens']} new tokens")
    return " · ".join(parts)


def answer_note(final: dict[str, Any]) -> str:
    """The short line under an answer: "DART kept 132/576 image tokens · prefill 0.093 s"."""
    pruning = final.get("pruning") or {}
    parts = []
    if pruning.get("image_tokens"):
        verb = f"{method_label(pruning.get('config'))} kept" if pruning.get("pruned") else "no pruning:"
        parts.append(f"{verb} {pruning['kept_image_tokens']}/{pruning['image_tokens']} image tokens")
    if pruning.get("prefill_seconds") is not None:
        parts.append(f"prefill {pruning['prefill_seconds']:.3f} s")
    return " · ".join(parts)


_MEMORY_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()]+")
_SERVER_PATH = re.compile(r"(?<![\w.~:/-])(?:/[\w.+@-]+){2,}/?")


def shown_error(message: str) -> str:
    """An error message as users see it: memory addresses, URLs (the servers' internal addresses) and server
    file paths, which a worker's or a library's message may carry, are left out."""
    message = _URL.sub("…", message)
    message = _MEMORY_ADDRESS.sub("0x…", message)
    return _SERVER_PATH.sub("…", message)


def check_report_fits(pruning: dict[str, Any] | None, image_count: int) -> None:
    """BadReply unless a pruning report's per-image lists match the images this conversation sent (the
    report's own consistency is checked as it arrives, see `llava.serve.protocol.PruningReport`)."""
    for field in ("kept_indices", "patch_grids"):
        entries = (pruning or {}).get(field)
        if entries is not None and len(entries) != image_count:
            raise BadReply("model worker", f"pruning.{field} has {len(entries)} entries for {image_count} image(s)")


def overlay_for(state: ChatState, pruning: dict[str, Any] | None) -> Image.Image | None:
    """The kept-patch view of every image the model saw, side by side in prompt order (each image's span is
    pruned on its own, on its own grid), or None (no image, an image without a patch grid, or tokens that a
    method before the language model pooled or merged, which are no patches of the image)."""
    if state.conv is None or not pruning or not pruning.get("kept_indices"):
        return None
    if any(kept is None for kept in pruning["kept_indices"]):
        return None
    images = state.conv.get_images(return_pil=True)
    grids = pruning.get("patch_grids") or [pruning.get("patch_grid")] * len(images)
    if not images or len(grids) != len(images) or not all(grids):
        return None
    panels = [draw_kept_patches(image, kept, grid, pruning.get("image_aspect_ratio"))
              for image, kept, grid in zip(images, pruning["kept_indices"], grids)]
    return panels[0] if len(panels) == 1 else side_by_side(panels)


def conversation_messages(conv: Conversation) -> list[dict[str, str]]:
    """The conversation after its template's examples as {role, content} messages, up to the open answer (what
    a worker that applies the model's own chat template takes). A turn's images go first, as `<image>`
    placeholders (where LLaVA's template puts them too, and Qwen's own examples)."""
    messages = []
    for i, (_, message) in enumerate(conv.messages[conv.offset:]):
        if message is None:
            break
        if isinstance(message, tuple):
            text = message[0]
            count = text.count(DEFAULT_IMAGE_TOKEN)
            text = DEFAULT_IMAGE_TOKEN * count + text.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        else:
            text = message
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


# -- uploads ---------------------------------------------------------------------------------------------


class UploadRejected(ValueError):
    """An upload the page will not use; the message is for the user and names no server path."""


NOT_RECEIVED = "The image did not arrive as an upload to this page; please upload it again."


def upload_folder() -> str:
    """Where Gradio keeps the files it received (GRADIO_TEMP_DIR, default TMP/gradio), resolved: the folder
    Gradio's own check of a marked file object (`gradio.FileData`) allows, read the same way, when called."""
    return os.path.realpath(gr.utils.get_upload_folder())


def upload_path(upload: dict[str, Any] | None) -> str | None:
    """The file behind the image box's raw value (Gradio's FileData as a dict), None when there is none.

    The value comes from the request as the browser (or anyone) wrote it, and Gradio checks its path only
    when the object carries the `gradio.FileData` marker; so the path is taken only if it resolves (links
    followed) to a regular file inside Gradio's upload folder. Anything else (a server file, a path out of
    the folder, a FIFO that would block the handler, a data: URL) is UploadRejected without being opened."""
    if upload is None:
        return None
    path = upload.get("path") if isinstance(upload, dict) else None
    if not isinstance(path, str) or not path:
        raise UploadRejected(NOT_RECEIVED)
    real, folder = os.path.realpath(path), upload_folder()
    if os.path.commonpath([real, folder]) != folder or real == folder or not os.path.isfile(real):
        logger.warning("refused an upload value naming %r (not a file Gradio received)", path)
        raise UploadRejected(NOT_RECEIVED)
    return real


def _fit(size: tuple[int, int], max_side: int, max_pixels: int) -> tuple[int, int]:
    """`size` scaled down (never up, aspect kept) to at most `max_side` per side and `max_pixels` in all."""
    width, height = size
    scale = min(1.0, max_side / max(width, height), math.sqrt(max_pixels / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


NOT_AN_IMAGE = (f"The file is not an image in a supported format ({', '.join(IMAGE_FORMATS)}); please upload "
                "another image.")


def _open_regular_file(path: str | Path):
    """`path` opened for reading, UploadRejected unless it is a regular file. Opened without blocking: opening
    a FIFO for reading waits for a writer, which would hold the handler's thread for good."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        logger.info("upload %s cannot be opened: %s", path, exc)
        raise UploadRejected(NOT_AN_IMAGE) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        logger.warning("upload %s is not a regular file", path)
        raise UploadRejected(NOT_AN_IMAGE)
    return os.fdopen(descriptor, "rb")


def _open_upload(file, path: str | Path) -> Image.Image:
    """The image's header only (no pixels decoded yet); `path` only names it in the log."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked next
            return Image.open(file, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise UploadRejected(f"The image has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; the limit is "
                             f"{MAX_DECODE_SIDE}x{MAX_DECODE_SIDE}; please upload a smaller image.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        logger.info("upload %s is not a supported image: %s", path, exc)
        raise UploadRejected(NOT_AN_IMAGE) from None


def load_upload(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """An uploaded image file as an RGB image of at most MAX_IMAGE_SIDE per side and `max_pixels` (a worker's
    limit; MAX_DECODE_PIXELS when unknown), upright as its EXIF says. The size is checked from the header
    before any pixel is decoded: UploadRejected, with a message for the user, above MAX_DECODE_PIXELS (after
    JPEG's reduced-scale decoding) or for a file that is not a readable image."""
    with _open_regular_file(path) as file, _open_upload(file, path) as image:
        width, height = image.size
        if width < 1 or height < 1:
            raise UploadRejected(f"The image has no pixels ({width}x{height}); please upload another image.")
        target = _fit(image.size, MAX_IMAGE_SIDE, min(max_pixels or MAX_DECODE_PIXELS, MAX_DECODE_PIXELS))
        image.draft("RGB", target)  # JPEG: decode at the smallest 1/2^k scale still covering `target`
        if image.size[0] * image.size[1] > MAX_DECODE_PIXELS:
            raise UploadRejected(f"The image is {width}x{height} pixels; the limit is {MAX_DECODE_SIDE}x"
                                 f"{MAX_DECODE_SIDE} ({MAX_DECODE_PIXELS:,} pixels); please upload a smaller image.")
        try:
            # Decodes (at the draft scale), then resizes to exactly `target`: thumbnail() may round a side up,
            # past a worker's pixel limit.
            image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0) if image.size != target else image
            return ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            logger.info("upload %s could not be decoded: %s", path, exc)
            raise UploadRejected("The image could not be decoded (the file may be damaged or cut short); "
                                 "please upload another image.") from None


def bounded_image(image: Image.Image, max_pixels: int | None = None) -> Image.Image:
    """An already decoded image (from a script or a test) within the same bounds as an upload, as RGB."""
    target = _fit(image.size, MAX_IMAGE_SIDE, min(max_pixels or MAX_DECODE_PIXELS, MAX_DECODE_PIXELS))
    if target != image.size:
        image = image.resize(target, Image.Resampling.LANCZOS)
    return image.convert("RGB")


# -- logs ------------------------------------------------------------------------------------------------


class ConversationLog:
    """JSON lines per day (`YYYY-MM-DD-conv.json`), images saved once under `serve_images/DATE/MD5.png`."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)

    def path(self) -> Path:
        return self.log_dir / f"{datetime.date.today().isoformat()}-conv.json"

    def save_images(self, state: ChatState) -> list[str]:
        hashes = []
        for image in state.conv.get_images(return_pil=True) if state.conv else []:
            digest = hashlib.md5(image.tobytes()).hexdigest()
            target = self.log_dir / "serve_images" / datetime.date.today().isoformat() / f"{digest}.png"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                image.save(target)
            hashes.append(digest)
        return hashes

    def write(self, record: dict[str, Any]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path(), "a", encoding="utf-8") as f:
            f.write(json.dumps({"tstamp": round(time.time(), 4), **record}, ensure_ascii=False) + "\n")


def _client_ip(request: gr.Request | None) -> str | None:
    return getattr(getattr(request, "client", None), "host", None)


# -- the app ---------------------------------------------------------------------------------------------


class WebServer:
    """The handlers, as methods so that tests can drive them without a browser."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.log = ConversationLog(config.log_dir)
        self._details: dict[str, dict[str, Any]] = {}  # per model: its worker's /model_details

    def details(self, model: str, refresh: bool = False) -> dict[str, Any] | None:
        """The model's /model_details (read once per model unless `refresh`), or None when no worker answers."""
        if refresh or model not in self._details:
            try:
                address = get_worker_address(self.config.controller_url, model)
                if not address:
                    return None
                self._details[model] = model_details(address)
            except ServeError as exc:
                logger.warning("cannot read the details of %s: %s", model, exc)
                return None
        return self._details[model]

    # models

    def fetch_models(self, refresh: bool = True) -> list[str]:
        try:
            return list_models(self.config.controller_url, refresh=refresh)
        except ServeError as exc:
            logger.warning("cannot list models: %s", exc)
            return []

    def model_choices(self, current: str | None = None):
        models = self.fetch_models()
        value = current if current in models else (models[0] if models else None)
        return gr.update(choices=models, value=value)

    # chat

    def add_text(self, state: ChatState, text: str, image: str | Path | Image.Image | None, image_mode: str,
                 template: str, model: str | None):
        """Append the user's turn; a new image starts a new conversation (as in LLaVA). `image`: the upload's
        file path (from the page) or a PIL image; it is kept downscaled, and a refused upload is a plain
        error toast (gr.Error) that leaves the conversation as it was."""
        text = (text or "").strip()
        if not text and image is None:
            state.skip_next = True
            return (state, to_chatbot(state), "", None) + (gr.update(),) * 5
        if image is not None:
            image = self._chat_image(image, model)
        if state.failed and state.conv is not None:  # drop the exchange that failed
            state.drop_last_exchange()
            state.failed = False
        if image is not None or state.conv is None:  # a new conversation, in the template chosen on the page
            conv_mode = template_name(template, model, self.details(model) if model else None)
        if image is not None:
            text = text[:MAX_TEXT_CHARS_WITH_IMAGE]
            if "<image>" not in text:
                text = text + "\n<image>"
            message = (text, image, image_mode)
            state.new_conversation(get_conv_template(conv_mode))
        else:
            message = text[:MAX_TEXT_CHARS]
            if state.conv is None:
                state.new_conversation(get_conv_template(conv_mode))
        state.conv.append_message(state.conv.roles[0], message)
        state.conv.append_message(state.conv.roles[1], None)
        state.skip_next = False
        return (state, to_chatbot(state), "", None) + self._buttons(False)

    def add_upload(self, state: ChatState, text: str, upload: dict[str, Any] | None, image_mode: str,
                   template: str, model: str | None):
        """`add_text` for the page, given the image box's raw value. Its event skips Gradio's preprocessing,
        which opens the file itself: a file it cannot read became an error naming the server's temporary
        path, and a mode conversion decoded the full image (a 12000x12000 upload held 1.6 GB)."""
        try:
            path = upload_path(upload)
        except UploadRejected as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return self.add_text(state, text, path, image_mode, template, model)

    def _chat_image(self, image: str | Path | Image.Image, model: str | None) -> Image.Image:
        """The image to keep in the conversation, no larger than the model's worker accepts."""
        details = self.details(model) if model else None
        max_pixels = ((details or {}).get("limits") or {}).get("max_pixels")
        try:
            if isinstance(image, Image.Image):
                return bounded_image(image, max_pixels)
            return load_upload(image, max_pixels)
        except UploadRejected as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def regenerate(self, state: ChatState, image_mode: str):
        if state.conv is None or len(state.conv.messages) - state.conv.offset < 2:
            state.skip_next = True
            return (state, to_chatbot(state)) + (gr.update(),) * 5
        user = state.conv.messages[-2]
        if isinstance(user[1], tuple):
            user[1] = (*user[1][:2], image_mode)
        state.conv.messages[-1][-1] = None
        state.answer_notes.pop(len(state.conv.messages) - 1, None)
        state.failed = False
        state.skip_next = False
        return (state, to_chatbot(state)) + self._buttons(False)

    def clear(self):
        return (ChatState(), [], "", None, None, "") + self._buttons(False)

    def vote(self, vote_type: str, state: ChatState, model: str | None, request: gr.Request | None = None):
        self.log.write({"type": vote_type, "model": model, "state": state.conv.dict() if state.conv else None,
                        "ip": _client_ip(request)})
        return ("",) + (gr.update(interactive=False),) * 3

    def http_bot(self, state: ChatState, model: str | None, temperature: float, top_p: float, max_new_tokens: int,
                 dart_on: bool, budget_mode: str, max_kept: int, reduction_ratio: float, pruned_layer: int,
                 pivot_image_token: int, pivot_text_token: int, pruning_method: str,
                 request: gr.Request | None = None):
        """Stream the answer into the chat; finally show the kept-patch overlay and the statistics.

        The settings arrive one argument per sidebar component (Gradio passes component values positionally
        and injects `request` by its annotation)."""
        settings = GenerationSettings(temperature, top_p, max_new_tokens, dart_on, budget_mode, max_kept,
                                      reduction_ratio, pruned_layer, pivot_image_token, pivot_text_token,
                                      pruning_method)
        no_change = (gr.update(), gr.update())
        if state.skip_next or state.conv is None:
            yield (state, to_chatbot(state)) + no_change + (gr.update(),) * 5
            return
        conv = state.conv
        start = time.time()
        images = conv.get_images(return_pil=True)
        payload = {
            "model": model,
            "images": [encode_image(image) for image in images],
            "temperature": float(settings.temperature),
            "top_p": float(settings.top_p),
            "max_new_tokens": int(settings.max_new_tokens),
            "dart": settings.dart_request(),
        }
        details = self.details(model) if model else None
        if details and details.get("prompt_format") == "messages":  # Qwen: the worker applies its chat template
            payload["messages"] = conversation_messages(conv)
        else:
            payload.update(prompt=conv.get_prompt(), stop=stop_string(conv))
        conv.messages[-1][-1] = CURSOR
        yield (state, to_chatbot(state)) + no_change + self._buttons(False)

        final = None
        try:
            if not model:
                raise ServeError("no model is available: is a model worker registered with the controller?")
            for chunk in self._stream_with_retry(model, payload):
                if chunk.get("error_code", 0) != 0:
                    raise ServeError(chunk.get("error") or "the worker failed")
                if chunk.get("finished"):
                    final = chunk
                    break
                conv.messages[-1][-1] = chunk["text"] + CURSOR
                yield (state, to_chatbot(state)) + no_change + self._buttons(False)
            if final is None:
                raise ServeError("the worker closed the stream before the answer was complete")
            check_report_fits(final.get("pruning"), len(images))
            overlay = overlay_for(state, final.get("pruning"))
        except ServeError as exc:
            logger.warning("request for %s failed: %s", model, exc)
            yield self._failed(state, str(exc))
            return
        except Exception:  # a bug here must not leave the page with a cursor and dead buttons
            logger.exception("showing the answer of %s failed", model)
            yield self._failed(state, "the page could not show this answer; please ask again")
            return

        conv.messages[-1][-1] = final["text"]
        state.answer_notes[len(conv.messages) - 1] = answer_note(final)
        pruning = final.get("pruning")
        state.last_pruning = pruning
        yield (state, to_chatbot(state), overlay, format_stats(final)) + self._buttons(True)
        self.log.write({
            "type": "chat", "model": model, "start": round(start, 4), "finish": round(time.time(), 4),
            "state": conv.dict(), "images": self.log.save_images(state), "dart": payload["dart"],
            "pruning": pruning, "usage": final.get("usage"), "ip": _client_ip(request),
        })

    def _stream_with_retry(self, model: str, payload: dict[str, Any]):
        """Stream from the controller's pick. If that worker cannot be reached (no answer at all, not a
        refusal, nothing received yet), refresh the controller's list and try once more."""
        for attempt in range(2):
            address = get_worker_address(self.config.controller_url, model)
            if not address:
                raise ServeError(f"no worker serves {model!r} right now")
            received = False
            try:
                for chunk in stream_generate(address, payload, self.config.request_timeout):
                    received = True
                    if chunk.get("error_code") == ErrorCode.WORKER_LOST:
                        self._forget_lost_worker(address)
                    yield chunk
                return
            except ServeError as exc:
                if exc.status is not None or received or attempt == 1:
                    raise
                logger.warning("worker %s unreachable (%s); refreshing the worker list", address, exc)
                self.fetch_models(refresh=True)

    def _forget_lost_worker(self, address: str) -> None:
        """A worker that broke off a stream is probably dead: have the controller re-check its workers now, so
        that the next question goes to a live one instead of waiting for the heartbeats to go stale."""
        logger.warning("worker %s broke off a stream; refreshing the worker list", address)
        self.fetch_models(refresh=True)

    def _failed(self, state: ChatState, message: str):
        """The update for a failed answer: the error in place of the answer and under the overlay, Regenerate
        and Clear usable."""
        text = f"**Error:** {shown_error(message)}"
        state.conv.messages[-1][-1] = text
        state.failed = True
        return (state, to_chatbot(state), None, text, *self._error_buttons())

    @staticmethod
    def _buttons(enabled: bool):
        """upvote, downvote, flag, regenerate, clear."""
        return tuple(gr.update(interactive=enabled) for _ in range(5))

    @staticmethod
    def _error_buttons():
        return (gr.update(interactive=False),) * 3 + (gr.update(interactive=True),) * 2

    # model details -> slider ranges

    def slider_ranges(self, model: str | None):
        """K in 1..layers-1 and max kept up to the image token count, from the worker's /model_details; for a
        family whose budget is the reduction ratio alone (Qwen: its reference takes no max kept) the budget
        switches to the ratio."""
        details = self.details(model, refresh=True) if model else None
        if details is None:
            return gr.update(), gr.update(), gr.update()
        budget = gr.update(value=BUDGET_RATIO) if details.get("ratio_budget") else gr.update()
        return (gr.update(maximum=max(1, details["num_hidden_layers"] - 1)),
                gr.update(maximum=details["image_tokens"]), budget)

    def build(self, models: list[str]) -> gr.Blocks:
        with gr.Blocks(title="LLaVA + DART", analytics_enabled=False) as demo:
            state = gr.State(ChatState())
            gr.Markdown(
                "# LLaVA with DART visual-token pruning\n"
                "Upload an image, ask about it. With DART on, the model keeps a few pivot tokens and the image "
                "tokens least duplicated with them after layer K-1; the view on the right shows which patches "
                "it kept (bright, outlined) and how long the prefill took."
                + (EMBEDDED_DEFAULT_HINT if EMBEDDED_DEFAULT_NAME in models else "")
            )
            with gr.Row():
                with gr.Column(scale=3):
                    model_selector = gr.Dropdown(choices=models, value=models[0] if models else None,
                                                 label="Model", interactive=True, elem_id="model_selector")
                    # Its uploads reach `add_upload` unopened (preprocess=False there); `load_upload` reads them.
                    imagebox = gr.Image(type="filepath", image_mode=None, label="Image",
                                        sources=["upload", "clipboard"], elem_id="imagebox")
                    image_mode = gr.Radio(IMAGE_MODES, value="Default", label="Preprocess for non-square image")
                    template = gr.Dropdown([AUTO_TEMPLATE, *sorted(conv_templates)], value=AUTO_TEMPLATE,
                                           label="Conversation template (LLaVA models)")
                    with gr.Accordion("DART pruning", open=True):
                        dart_on = gr.Checkbox(value=True, label="DART on", elem_id="dart_on")
                        method = gr.Dropdown([(label, name) for name, label in METHOD_LABELS.items()], value="dart",
                                             label="Method (the others keep as many tokens as DART would)",
                                             elem_id="pruning_method")
                        budget_mode = gr.Radio([BUDGET_MAX_KEPT, BUDGET_RATIO], value=BUDGET_MAX_KEPT,
                                               label="Budget from")
                        max_kept = gr.Slider(0, 576, value=128, step=1, label="Max kept (selected besides the pivots)",
                                             elem_id="max_kept")
                        ratio = gr.Slider(0.0, 0.99, value=0.778, step=0.001, label="Reduction ratio")
                        layer = gr.Slider(1, 31, value=2, step=1, label="Prune after layer K-1 (K)")
                        pivot_image = gr.Slider(0, 16, value=4, step=1, label="Image pivots")
                        pivot_text = gr.Slider(0, 16, value=4, step=1, label="Text pivots")
                    with gr.Accordion("Parameters", open=False):
                        temperature = gr.Slider(0.0, 1.0, value=0.2, step=0.1, label="Temperature")
                        top_p = gr.Slider(0.0, 1.0, value=0.7, step=0.1, label="Top P")
                        max_tokens = gr.Slider(1, 1024, value=512, step=1, label="Max output tokens")
                with gr.Column(scale=6):
                    chatbot = gr.Chatbot(label="LLaVA-DART", height=520, elem_id="chatbot")
                    with gr.Row():
                        textbox = gr.Textbox(show_label=False, placeholder="Ask about the image and press Enter",
                                             container=False, scale=8, elem_id="textbox")
                        send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send_btn")
                    gr.Examples(example_inputs(self.config.log_dir / "examples"), [imagebox, textbox],
                                label="Examples (held-out generated scenes)")
                    with gr.Row():
                        upvote = gr.Button("Upvote", interactive=False)
                        downvote = gr.Button("Downvote", interactive=False)
                        flag = gr.Button("Flag", interactive=False)
                        regenerate = gr.Button("Regenerate", interactive=False)
                        clear = gr.Button("Clear", interactive=False)
                with gr.Column(scale=4):
                    overlay = gr.Image(label="Kept patches (bright, outlined) in the model's view", type="pil",
                                       interactive=False, format="png", elem_id="overlay")
                    stats = gr.Markdown(elem_id="prune_stats")

            settings = [temperature, top_p, max_tokens, dart_on, budget_mode, max_kept, ratio, layer,
                        pivot_image, pivot_text, method]
            buttons = [upvote, downvote, flag, regenerate, clear]
            bot_inputs = [state, model_selector, *settings]
            bot_outputs = [state, chatbot, overlay, stats, *buttons]

            for vote_type, button in (("upvote", upvote), ("downvote", downvote), ("flag", flag)):
                button.click(_vote_handler(self, vote_type), [state, model_selector], [textbox, upvote, downvote, flag])
            for trigger in (textbox.submit, send_btn.click):
                trigger(
                    self.add_upload, [state, textbox, imagebox, image_mode, template, model_selector],
                    [state, chatbot, textbox, imagebox, *buttons], preprocess=False,
                ).then(self.http_bot, bot_inputs, bot_outputs)
            regenerate.click(self.regenerate, [state, image_mode], [state, chatbot, *buttons]).then(
                self.http_bot, bot_inputs, bot_outputs
            )
            clear.click(self.clear, None, [state, chatbot, textbox, imagebox, overlay, stats, *buttons])
            ranges = [layer, max_kept, budget_mode]
            model_selector.change(self.slider_ranges, [model_selector], ranges)
            if self.config.model_list_mode == "reload":
                demo.load(self.model_choices, [model_selector], [model_selector]).then(
                    self.slider_ranges, [model_selector], ranges
                )
            else:
                demo.load(self.slider_ranges, [model_selector], ranges)
        return demo


def _vote_handler(server: WebServer, vote_type: str):
    def handler(state: ChatState, model: str | None, request: gr.Request):
        return server.vote(vote_type, state, model, request)

    return handler


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LLaVA-DART Gradio web server")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_WEB_PORT)
    parser.add_argument("--controller-url", default=f"http://{DEFAULT_HOST}:{DEFAULT_CONTROLLER_PORT}")
    parser.add_argument("--concurrency-count", type=int, default=16, help="requests the page handles at once")
    parser.add_argument("--model-list-mode", choices=["once", "reload"], default="once",
                        help="read the model list at start-up only, or on every page load")
    parser.add_argument("--share", action="store_true", help="Gradio share link (needs network)")
    parser.add_argument("--log-dir", default="logs", help="conversation logs (JSON lines) and images")
    parser.add_argument("--max-upload-size", default="10mb", help="largest file the page accepts")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds to wait for the next chunk")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls from the demo
    config = ServerConfig(args.controller_url.rstrip("/"), Path(args.log_dir), args.model_list_mode,
                          args.request_timeout)
    server = WebServer(config)
    models = server.fetch_models()
    logger.info("web server on http://%s:%d (controller %s, models %s, logs in %s)",
                args.host, args.port, config.controller_url, models or "none yet", config.log_dir)
    demo = server.build(models)
    demo.queue(default_concurrency_limit=args.concurrency_count)
    # show_error=False: an unexpected exception's text (paths, addresses) stays in the log; the page's own
    # messages (gr.Error) are shown anyway.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False, ssr_mode=False,
                max_file_size=args.max_upload_size, quiet=True)


if __name__ == "__main__":
    main()
