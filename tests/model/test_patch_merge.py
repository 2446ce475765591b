"""LLaVA-1.6's patch merges (`mm_patch_merge_type`): token order, unpadding, image_newline, and a tiny
anyres + spatial_unpad checkpoint end to end (loading, splicing, DART, the serving length check)."""

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from llava.mm_utils import process_images, tokenizer_image_token
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.patch_merge import merge_crops, merged_token_count, unpadded_shape
from llava.model.pruning import make_dart_config
from llava.model.tiny_checkpoint import build_tiny_checkpoint
from llava.model.families import loaded_model

NEWLINE = -1.0


def numbered_crops(num_crops, side):
    """(P, side*side, 1) features whose value names the crop and patch: 100 * crop + patch."""
    values = [[100.0 * crop + patch for patch in range(side * side)] for crop in range(num_crops)]
    return torch.tensor(values).unsqueeze(-1)


def stitched_value(row, col, cols, side):
    """Value of the stitched anyres map at (row, col): which crop covers it and which patch of that crop."""
    crop = 1 + (row // side) * cols + col // side
    return 100.0 * crop + (row % side) * side + col % side


@pytest.mark.parametrize(
    "height, width, image_size, expected",
    [
        (4, 8, (800, 200), (2, 8)),  # wider than the map: int(200 * 8 / 800) = 2 rows covered, 1 cut each side
        (4, 8, (400, 400), (4, 4)),  # narrower: 4 columns covered, 2 cut on each side
        (4, 8, (800, 400), (4, 8)),  # the map's own aspect ratio: nothing cut
        (4, 4, (300, 400), (4, 4)),  # 3 columns covered, but (4 - 3) // 2 = 0 are cut, as LLaVA rounds
        (24, 48, (800, 300), (18, 48)),  # int(300 * 48 / 800) = 18
    ],
)
def test_unpadded_shape(height, width, image_size, expected):
    assert unpadded_shape(height, width, image_size) == expected


def test_flat_concatenates_the_crops():
    features = numbered_crops(3, 2)
    assert merge_crops(features, "flat").flatten().tolist() == features.flatten().tolist()


def test_spatial_reads_the_stitched_map_row_by_row():
    side, cols, rows = 2, 2, 2
    merged = merge_crops(numbered_crops(1 + cols * rows, side), "spatial", (700, 700), grid=(cols, rows))
    expected = [float(p) for p in range(side * side)] + [
        stitched_value(r, c, cols, side) for r in range(rows * side) for c in range(cols * side)
    ]
    assert merged.flatten().tolist() == expected


def test_spatial_unpad_cuts_the_padding_and_ends_each_row_with_the_newline():
    side, cols, rows = 4, 2, 1
    newline = torch.tensor([NEWLINE])
    merged = merge_crops(numbered_crops(3, side), "spatial_unpad", (800, 200), grid=(cols, rows), newline=newline)
    kept_rows = [1, 2]  # 4 x 8 map, 2 rows covered by the 800 x 200 image (test_unpadded_shape)
    expected = [float(p) for p in range(side * side)]
    for r in kept_rows:
        expected += [stitched_value(r, c, cols, side) for c in range(cols * side)] + [NEWLINE]
    assert merged.flatten().tolist() == expected
    assert len(expected) == merged_token_count(3, side, "spatial_unpad", (800, 200), (cols, rows))


def test_spatial_unpad_cuts_columns_of_a_tall_image():
    side, cols, rows = 2, 1, 2
    newline = torch.tensor([NEWLINE])
    merged = merge_crops(numbered_crops(3, side), "spatial_unpad", (100, 400), grid=(cols, rows), newline=newline)
    # 4 x 2 map; int(100 * 4 / 400) = 1 column covered, (2 - 1) // 2 = 0 cut: both columns stay.
    expected = [0.0, 1.0, 2.0, 3.0]
    for r in range(4):
        expected += [stitched_value(r, c, cols, side) for c in range(2)] + [NEWLINE]
    assert merged.flatten().tolist() == expected


def test_a_single_crop():
    features = numbered_crops(1, 2)
    newline = torch.tensor([NEWLINE])
    assert merge_crops(features, "spatial").flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert merge_crops(features, "spatial_unpad", newline=newline).flatten().tolist() == [0.0, 1.0, 2.0, 3.0, NEWLINE]
    assert merged_token_count(1, 2, "spatial_unpad") == 5 and merged_token_count(1, 2, "spatial") == 4


@pytest.mark.parametrize("merge_type", ["flat", "spatial", "spatial_unpad"])
@pytest.mark.parametrize("grid", [(1, 2), (2, 1), (2, 2), (3, 1)])
@pytest.mark.parametrize("image_size", [(640, 480), (300, 900), (1000, 1000), (1333, 257)])
def test_counts_match_the_merged_features(merge_type, grid, image_size):
    side = 6
    features = numbered_crops(1 + grid[0] * grid[1], side)
    merged = merge_crops(features, merge_type, image_size, grid, newline=torch.tensor([NEWLINE]))
    assert merged.shape[0] == merged_token_count(features.shape[0], side, merge_type, image_size, grid)


def test_bad_input_is_a_clear_error():
    features = numbered_crops(3, 2)
    with pytest.raises(ValueError, match="unknown mm_patch_merge_type 'spatial_pad'"):
        merge_crops(features, "spatial_pad")
    with pytest.raises(ValueError, match="image_newline"):
        merge_crops(features, "spatial_unpad", (10, 10), (2, 1))
    with pytest.raises(ValueError, match="pass image_sizes"):
        merge_crops(features, "spatial")
    with pytest.raises(ValueError, match="needs 4 crops after the global view, got 2"):
        merge_crops(features, "spatial", (10, 10), (2, 2))
    with pytest.raises(ValueError, match="original size"):
        merge_crops(features, "spatial_unpad", None, (2, 1), newline=torch.zeros(1))


# ------------------------------------------------------------------------ a tiny LLaVA-1.6 checkpoint


@pytest.fixture(scope="module")
def llava_next(tmp_path_factory, to_llava_next):
    """The tiny checkpoint turned into LLaVA-1.6's layout: anyres, spatial_unpad, a trained image_newline."""
    path = to_llava_next(build_tiny_checkpoint(tmp_path_factory.mktemp("next") / "llava-next-tiny", seed=1))
    weights = load_file(path / "model.safetensors")
    newline = torch.linspace(-2.0, 2.0, weights["model.embed_tokens.weight"].shape[1])
    save_file({**weights, "model.image_newline": newline}, path / "model.safetensors", metadata={"format": "pt"})
    tokenizer, model, processor, context_len = load_pretrained_model(str(path), None, device="cpu")
    return tokenizer, model, processor, context_len, newline


def test_llava_next_checkpoint_splices_unpadded_rows_with_newlines(llava_next):
    tokenizer, model, processor, _, newline = llava_next
    torch.testing.assert_close(model.get_model().image_newline.detach(), newline)
    image = Image.new("RGB", (800, 300), (200, 30, 30))
    pixels = process_images([image], processor, model.config)
    assert pixels.shape[:2] == (1, 3)  # the global view and a 2 x 1 grid (672 x 336)
    ids = tokenizer_image_token("USER: <image>\nWhat colour? ASSISTANT:", tokenizer, return_tensors="pt")[None]
    spliced = model.prepare_multimodal_inputs(ids, pixels, image_sizes=[image.size])
    (start, count), = spliced.image_spans[0]
    # 576 for the global view, then 18 of the map's 24 rows (test_unpadded_shape), each 48 patches + newline.
    assert count == 576 + 18 * 49 == model.image_token_count(3, image.size)
    row_ends = [start + 576 + 48 + 49 * r for r in range(18)]
    embeds = spliced.inputs_embeds[0]
    for position in row_ends:
        torch.testing.assert_close(embeds[position], newline)
    assert not torch.allclose(embeds[start + 576 + 47], newline)
    with pytest.raises(ValueError, match="pass image_sizes"):
        model.prepare_multimodal_inputs(ids, pixels)


def test_llava_next_generates_with_dart_and_serving_counts_the_same_length(llava_next):
    tokenizer, model, processor, context_len, _ = llava_next
    image = Image.new("RGB", (300, 700), (30, 30, 200))  # a 1 x 2 grid, columns cut
    loaded = loaded_model(tokenizer, model, processor, context_len)
    prepared = loaded.prompt_inputs("USER: <image>\nWhat colour? ASSISTANT:", [image])
    record = PruningRecord(dart_config=make_dart_config(retain_token_num_for_llava_next=64))
    model.generate(**loaded.generate_inputs([prepared]), pruning_record=record, max_new_tokens=2, do_sample=False)
    assert record.prefill_length == prepared.sequence_length
    (_, count), = record.image_spans[0]
    pixels = prepared.image_inputs["pixels"]
    assert count == 576 + 48 * 21 == model.image_token_count(pixels[0].shape[0], image.size) == prepared.image_tokens[0]
    # LLaVA-1.6 budget: M = min(64, m - 4) = 64, T = 64 // 8 = 8 per pivot, plus the 4 image pivots.
    assert record.num_kept_image_tokens() == 4 + 8 * 8


def test_a_checkpoint_without_its_image_newline_is_refused(tmp_path, to_llava_next):
    """A LLaVA-1.5 checkpoint switched to spatial_unpad lacks the row separator: a random one would be a silent
    change of every answer, so loading names it."""
    path = to_llava_next(build_tiny_checkpoint(tmp_path / "switched", seed=2), with_newline=False)
    with pytest.raises(ValueError, match=r"not in the checkpoint.*model\.image_newline"):
        load_pretrained_model(str(path), None, device="cpu")
