"""The single-image CLI end to end on a tiny checkpoint, and its error messages."""

import logging

from PIL import Image

from llava.eval.run_llava import main


def run(tiny_ckpt, image, *extra):
    return main(["--model-path", str(tiny_ckpt), "--image-file", str(image), "--query", "What colour?",
                 "--conv-mode", "vicuna_v1", "--temperature", "0", "--max_new_tokens", "4", "--device", "cpu", *extra])


def test_answers_and_logs_kept_tokens(tiny_ckpt, tmp_path, capsys, caplog):
    image = tmp_path / "img.png"
    Image.new("RGB", (500, 300), (10, 200, 30)).save(image)
    with caplog.at_level(logging.INFO):
        assert run(tiny_ckpt, image, "--sparse", "--max_num_trunction", "64") == 0
    assert capsys.readouterr().out.strip() != ""
    assert "DART kept 68 of 576 image tokens" in caplog.text


def test_missing_and_corrupt_images_are_named(tiny_ckpt, tmp_path, capsys):
    assert run(tiny_ckpt, tmp_path / "missing.png") == 2
    assert "image file not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    assert run(tiny_ckpt, corrupt) == 2
    assert f"cannot read image {corrupt}" in capsys.readouterr().err


def test_an_oversized_image_is_one_clear_error(tiny_ckpt, tmp_path, capsys, write_bomb_png):
    bomb = write_bomb_png(tmp_path / "bomb.png")
    assert run(tiny_ckpt, bomb) == 2
    assert f"error: cannot read image {bomb}: too large" in capsys.readouterr().err


def test_bad_dart_setting_is_an_error(tiny_ckpt, tmp_path, capsys):
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64)).save(image)
    assert run(tiny_ckpt, image, "--sparse", "--pruned_layer", "9") == 2
    assert "must be in 1..3" in capsys.readouterr().err


def test_unpruned_run_reports_all_image_tokens(tiny_ckpt, tmp_path, caplog):
    image = tmp_path / "img.png"
    Image.new("RGB", (200, 300), (10, 20, 230)).save(image)
    with caplog.at_level(logging.INFO):
        assert run(tiny_ckpt, image) == 0
    assert "no pruning: 576 image tokens" in caplog.text
