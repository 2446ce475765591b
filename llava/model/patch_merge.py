"""How one image's crop features become its tokens in the sequence: LLaVA's `mm_patch_merge_type`.

LLaVA-1.5 encodes one crop per image. LLaVA-1.6 ("anyres") encodes a global view followed by a grid of
crops (`cols` x `rows`, as `llava.mm_utils.get_anyres_image_grid_shape` returns it), and the merge type
orders their features:

- "flat": every crop's patches in turn, row-major within each crop.
- "spatial": the global view, then the crops stitched into one (rows * side) x (cols * side) feature
  map, read row-major across crop borders.
- "spatial_unpad" (the released LLaVA-1.6 checkpoints): as "spatial", but the rows or columns of the map
  that only show the padding `resize_and_pad_image` added are cut off, and the learnt `image_newline`
  embedding follows each row of the map, so the model can tell where a row ends. A lone crop is followed
  by one `image_newline`.

A batch given as one (N, 3, H, W) tensor (LLaVA-1.5 "pad") is never merged; these functions see the
features of one image whose crops came as a (P, 3, H, W) stack or a single (3, H, W) image.
"""

from __future__ import annotations

import math

import torch

MERGE_TYPES = ("flat", "spatial", "spatial_unpad")


def check_merge_type(merge_type: str) -> None:
    if merge_type not in MERGE_TYPES:
        raise ValueError(f"unknown mm_patch_merge_type {merge_type!r}; expected one of {', '.join(MERGE_TYPES)}")


def unpadded_shape(height: int, width: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) left of a `height` x `width` feature map once the padding around an image of
    `image_size` = (width, height) in pixels is cut off; the padding is split evenly between both sides.

    `resize_and_pad_image` scales the image to fit the grid resolution and pads the short dimension; the
    rows (or columns) kept are those the scaled image covers, rounded as LLaVA rounds them.
    """
    image_width, image_height = image_size
    if image_width / image_height > width / height:  # wider than the map: padded above and below
        covered = int(image_height * (width / image_width))
        return height - 2 * ((height - covered) // 2), width
    covered = int(image_width * (height / image_height))
    return height, width - 2 * ((width - covered) // 2)


def merged_token_count(num_crops: int, side: int, merge_type: str, image_size: tuple[int, int] | None = None,
                       grid: tuple[int, int] | None = None) -> int:
    """Tokens one image contributes: `num_crops` crops of `side` x `side` patches each (the global view
    included), `grid` = (cols, rows) of the anyres crops. `merge_crops` run on shapes alone (meta tensors
    of width 0), so the count cannot drift from the layout."""
    shapes = torch.empty((num_crops, side * side, 0), device="meta")
    return merge_crops(shapes, merge_type, image_size, grid, newline=torch.empty(0, device="meta")).shape[0]


def merge_crops(features: torch.Tensor, merge_type: str, image_size: tuple[int, int] | None = None,
                grid: tuple[int, int] | None = None, newline: torch.Tensor | None = None) -> torch.Tensor:
    """(P, side * side, D) projected features of one image's crops -> (tokens, D) in sequence order.

    image_size: the original (width, height); grid: (cols, rows) of the anyres crops after the global
    view; newline: the model's `image_newline` (D,), needed by "spatial_unpad".
    """
    check_merge_type(merge_type)
    if merge_type == "flat":
        return features.flatten(0, 1)
    unpad = merge_type == "spatial_unpad"
    if unpad and newline is None:
        raise ValueError("mm_patch_merge_type 'spatial_unpad' needs the model's image_newline embedding")
    base = features[0]
    if features.shape[0] == 1:
        return torch.cat([base, newline[None].to(base)]) if unpad else base
    side = math.isqrt(base.shape[0])
    if side * side != base.shape[0]:
        raise ValueError(f"a crop's {base.shape[0]} patches do not form a square grid")
    cols, rows = _check_grid(grid, features.shape[0])
    crops = features[1:].view(rows, cols, side, side, -1)
    if not unpad:
        # (rows, side, cols, side, D): row r of the stitched map is crop row r // side, patch row r % side.
        return torch.cat([base, crops.permute(0, 2, 1, 3, 4).flatten(0, 3)])
    feature_map = crops.permute(4, 0, 2, 1, 3).flatten(1, 2).flatten(2, 3)  # (D, rows * side, cols * side)
    height, width = feature_map.shape[1:]
    kept_rows, kept_cols = unpadded_shape(height, width, _check_size(image_size))
    top, left = (height - kept_rows) // 2, (width - kept_cols) // 2
    feature_map = feature_map[:, top : top + kept_rows, left : left + kept_cols]
    row_ends = newline.to(feature_map)[:, None, None].expand(-1, kept_rows, 1)
    feature_map = torch.cat([feature_map, row_ends], dim=2)
    return torch.cat([base, feature_map.flatten(1, 2).transpose(0, 1)])


def _check_grid(grid: tuple[int, int] | None, num_crops: int) -> tuple[int, int]:
    if grid is None:
        raise ValueError("merging anyres crops spatially needs the crop grid: pass image_sizes to the model")
    cols, rows = grid
    if cols * rows != num_crops - 1:
        raise ValueError(
            f"the anyres grid {cols}x{rows} needs {cols * rows} crops after the global view, got {num_crops - 1}; "
            "were the images preprocessed with this model's image_grid_pinpoints?"
        )
    return cols, rows


def _check_size(image_size: tuple[int, int] | None) -> tuple[int, int]:
    if image_size is None:
        raise ValueError("'spatial_unpad' needs each image's original size: pass image_sizes to the model")
    return image_size
