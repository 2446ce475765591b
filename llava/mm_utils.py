"""Image preprocessing, prompt tokenization with image placeholders, and generation helpers.

Same behaviour as LLaVA's `llava/mm_utils.py` (LLaVA-1.5 "pad" and LLaVA-1.6 "anyres" preprocessing), on
transformers 5.x.
"""

from __future__ import annotations

import ast
import base64
import logging
import math
from collections.abc import Sequence
from io import BytesIO
from typing import Any

import torch
from PIL import Image
from transformers import CLIPImageProcessorPil, StoppingCriteria

from llava.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX

logger = logging.getLogger(__name__)

Resolution = tuple[int, int]  # (width, height), PIL's order

# Values of `config.image_aspect_ratio` that mean "let the processor resize and center-crop".
_PLAIN_ASPECT_RATIOS = (None, "square")


# -- images -------------------------------------------------------------------------------------------


def load_image_processor(path_or_dir: str, **kwargs) -> CLIPImageProcessorPil:
    """The CLIP image processor, PIL backend chosen explicitly.

    transformers 5 prefers a torchvision backend when one imports; the PIL one reproduces the pixel values
    LLaVA was trained with and keeps results independent of whether torchvision is installed.
    """
    return CLIPImageProcessorPil.from_pretrained(path_or_dir, **kwargs)


def load_image_from_base64(image: str) -> Image.Image:
    return Image.open(BytesIO(base64.b64decode(image)))


def expand2square(pil_img: Image.Image, background_color) -> Image.Image:
    """Pad the shorter side so the image is square, keeping it centered (offset rounded down)."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    side = max(width, height)
    result = Image.new(pil_img.mode, (side, side), background_color)
    result.paste(pil_img, ((side - width) // 2, (side - height) // 2))
    return result


def _parse_grid_pinpoints(grid_pinpoints: str | Sequence[Sequence[int]]) -> list[Resolution]:
    """Config values are a list of [width, height] pairs or its string form, e.g. "[(336, 672), ...]"."""
    if isinstance(grid_pinpoints, str):
        grid_pinpoints = ast.literal_eval(grid_pinpoints)
    return [(int(w), int(h)) for w, h in grid_pinpoints]


def select_best_resolution(original_size: Resolution, possible_resolutions: Sequence[Resolution]) -> Resolution:
    """The candidate that keeps the most of the image's pixels after fitting it in; ties: least padding."""
    original_width, original_height = original_size
    best_fit = None
    max_effective, min_wasted = 0, float("inf")
    for width, height in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        downscaled = int(original_width * scale) * int(original_height * scale)
        effective = min(downscaled, original_width * original_height)
        wasted = width * height - effective
        if effective > max_effective or (effective == max_effective and wasted < min_wasted):
            max_effective, min_wasted = effective, wasted
            best_fit = (width, height)
    return best_fit


def resize_and_pad_image(image: Image.Image, target_resolution: Resolution) -> Image.Image:
    """Resize to fit inside `target_resolution` keeping the aspect ratio, then center on black."""
    original_width, original_height = image.size
    target_width, target_height = target_resolution
    scale_w, scale_h = target_width / original_width, target_height / original_height
    if scale_w < scale_h:
        new_width, new_height = target_width, min(math.ceil(original_height * scale_w), target_height)
    else:
        new_width, new_height = min(math.ceil(original_width * scale_h), target_width), target_height
    resized = image.resize((new_width, new_height))
    canvas = Image.new("RGB", (target_width, target_height), (0, 0, 0))
    canvas.paste(resized, ((target_width - new_width) // 2, (target_height - new_height) // 2))
    return canvas


def divide_to_patches(image: Image.Image, patch_size: int) -> list[Image.Image]:
    """Square crops of `patch_size`, row by row (left to right, then top to bottom)."""
    width, height = image.size
    return [
        image.crop((left, top, left + patch_size, top + patch_size))
        for top in range(0, height, patch_size)
        for left in range(0, width, patch_size)
    ]


def get_anyres_image_grid_shape(
    image_size: Resolution, grid_pinpoints: str | Sequence[Sequence[int]], patch_size: int
) -> tuple[int, int]:
    """(columns, rows) of the patch grid that `process_anyres_image` produces for this image size."""
    width, height = select_best_resolution(image_size, _parse_grid_pinpoints(grid_pinpoints))
    return width // patch_size, height // patch_size


def _preprocess_one(image: Image.Image, image_processor) -> torch.Tensor:
    """(3, H, W) pixel values of one image."""
    return image_processor.preprocess(image, return_tensors="pt")["pixel_values"][0]


def process_anyres_image(image: Image.Image, image_processor, grid_pinpoints) -> torch.Tensor:
    """LLaVA-1.6 "anyres": a global view plus the patches of the best-fitting grid.

    Returns (1 + columns * rows, 3, H, W); the global view (the whole image squashed to
    `shortest_edge` x `shortest_edge`) comes first.
    """
    best_resolution = select_best_resolution(image.size, _parse_grid_pinpoints(grid_pinpoints))
    logger.debug("anyres: image %s -> grid resolution %s", image.size, best_resolution)
    padded = resize_and_pad_image(image, best_resolution)
    patches = divide_to_patches(padded, image_processor.crop_size["height"])
    side = image_processor.size["shortest_edge"]
    global_view = image.resize((side, side))
    return torch.stack([_preprocess_one(view, image_processor) for view in [global_view, *patches]])


def process_images(images: Sequence[Image.Image], image_processor, model_cfg: Any) -> torch.Tensor | list:
    """Pixel values for a batch of images, following `model_cfg.image_aspect_ratio`.

    "pad": (B, 3, H, W); "anyres": (B, P, 3, H, W), or a list of (P_i, 3, H, W) when the patch counts
    differ; None / "square": the processor's own resize + center crop, (B, 3, H, W).
    """
    aspect_ratio = getattr(model_cfg, "image_aspect_ratio", None)
    if aspect_ratio in _PLAIN_ASPECT_RATIOS:
        return image_processor(images, return_tensors="pt")["pixel_values"]
    if aspect_ratio == "pad":
        # Pad with the processor's mean colour, so the padding normalises to (almost) zero.
        background = tuple(int(x * 255) for x in image_processor.image_mean)
        processed = [_preprocess_one(expand2square(image, background), image_processor) for image in images]
    elif aspect_ratio == "anyres":
        grid_pinpoints = getattr(model_cfg, "image_grid_pinpoints", None)
        if not grid_pinpoints:
            raise ValueError("image_aspect_ratio='anyres' needs `image_grid_pinpoints` in the model config")
        processed = [process_anyres_image(image, image_processor, grid_pinpoints) for image in images]
    else:
        raise ValueError(
            f"Unsupported image_aspect_ratio {aspect_ratio!r}; expected one of None, 'square', 'pad', 'anyres'"
        )
    if all(x.shape == processed[0].shape for x in processed):
        return torch.stack(processed)
    return processed


# -- text ---------------------------------------------------------------------------------------------


def tokenizer_image_token(
    prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX, return_tensors: str | None = None
) -> list[int] | torch.Tensor:
    """Token ids of `prompt` with `image_token_index` in place of every `<image>`.

    As in LLaVA, each text chunk is tokenized on its own with the tokenizer's defaults (so each begins with
    the SentencePiece dummy-prefix space, e.g. "\\nWhat" -> "▁", "<0x0A>", ...: the ids LLaVA was trained
    on). If the tokenizer adds a BOS, the sequence keeps one BOS at the start and the per-chunk BOS of the
    later chunks is dropped; a tokenizer that adds none gets none.
    """
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(DEFAULT_IMAGE_TOKEN)]
    bos = tokenizer.bos_token_id
    has_bos = bos is not None and bool(chunks[0]) and chunks[0][0] == bos

    input_ids = [bos] if has_bos else []
    for i, chunk in enumerate(chunks):
        if i > 0:
            input_ids.append(image_token_index)
        input_ids.extend(chunk[1:] if has_bos and chunk[:1] == [bos] else chunk)

    if return_tensors is None:
        return input_ids
    if return_tensors == "pt":
        return torch.tensor(input_ids, dtype=torch.long)
    raise ValueError(f"Unsupported tensor type: {return_tensors!r} (only 'pt' or None)")


def get_model_name_from_path(model_path: str) -> str:
    """Last path component; "<parent>_checkpoint-N" for a training checkpoint directory."""
    parts = model_path.strip("/").split("/")
    if parts[-1].startswith("checkpoint-"):
        return f"{parts[-2]}_{parts[-1]}"
    return parts[-1]


class KeywordsStoppingCriteria(StoppingCriteria):
    """Stop a sequence once it ends with one of `keywords` (e.g. the template's closing separator).

    A row stops when its last tokens equal a keyword's token ids, or when the decoded text of its newly
    generated tail contains a keyword. transformers 5 expects one bool per row, so rows of a batch finish
    independently (LLaVA's version returned a single bool: stop when all rows matched).
    """

    def __init__(self, keywords: Sequence[str], tokenizer, input_ids: torch.Tensor):
        self.keywords = list(keywords)
        self.tokenizer = tokenizer
        self.keyword_ids = [self._keyword_ids(keyword) for keyword in self.keywords]
        self.max_keyword_len = max((len(ids) for ids in self.keyword_ids), default=0)
        self.start_len = input_ids.shape[1]

    def _keyword_ids(self, keyword: str) -> torch.Tensor:
        ids = self.tokenizer(keyword).input_ids
        if len(ids) > 1 and ids[0] == self.tokenizer.bos_token_id:
            ids = ids[1:]
        return torch.tensor(ids, dtype=torch.long)

    def _row_done(self, row: torch.Tensor) -> bool:
        """row: (T,) token ids of one sequence, prompt included."""
        for ids in self.keyword_ids:
            if len(ids) <= row.shape[0] and torch.equal(row[-len(ids) :], ids.to(row.device)):
                return True
        window = min(row.shape[0] - self.start_len, self.max_keyword_len)
        if window <= 0:
            return False
        tail = self.tokenizer.decode(row[-window:], skip_special_tokens=True)
        return any(keyword in tail for keyword in self.keywords)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        """input_ids: (B, T). Returns (B,) bool."""
        done = [self._row_done(row) for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def load_image(image_file: str, timeout: float = 10.0) -> Image.Image:
    """An RGB image from a path or an http(s) URL, with an error that names the file when it cannot be read."""
    if image_file.startswith(("http://", "https://")):
        from urllib.request import urlopen

        try:
            with urlopen(image_file, timeout=timeout) as response:
                data = BytesIO(response.read())
        except OSError as exc:
            raise FileNotFoundError(f"cannot download image {image_file}: {exc}") from exc
    else:
        data = image_file
    try:
        with Image.open(data) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {image_file}") from None
    except Image.DecompressionBombError as exc:  # an Exception, not an OSError: caught apart so one image skips
        raise ValueError(f"cannot read image {image_file}: too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # PIL raises UnidentifiedImageError (an OSError) and friends
        raise ValueError(f"cannot read image {image_file}: not a valid image file ({exc})") from exc
