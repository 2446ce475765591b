"""The single-image CLI end to end on a tiny checkpoint, and its error messages."""

import logging

from PIL import Image

from llava.eval.cli.run_llava import main


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


def test_the_template_comes_from_the_checkpoint_record_not_its_name(tiny_ckpt, tmp_path, caplog):
    """A copy of the checkpoint under a name without "v1" that records its template: that template is used
    (the name alone would give llava_v0), and the log says where it came from."""
    import json
    import shutil

    finetune = tmp_path / "my-finetune"
    shutil.copytree(tiny_ckpt, finetune)
    config = json.loads((finetune / "config.json").read_text())
    config["conv_template"] = "llava_v1"
    (finetune / "config.json").write_text(json.dumps(config))
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64)).save(image)
    with caplog.at_level(logging.INFO):
        assert main(["--model-path", str(finetune), "--image-file", str(image), "--query", "Is it dark?",
                     "--temperature", "0", "--max_new_tokens", "2", "--device", "cpu"]) == 0
    assert "conversation template llava_v1 (recorded in the checkpoint's config.json)" in caplog.text


def test_an_unknown_template_fails_before_the_model_loads(tmp_path, capsys):
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64)).save(image)
    assert main(["--model-path", str(tmp_path / "no-model-here"), "--image-file", str(image), "--query", "q",
                 "--conv-mode", "vicuna_v9", "--device", "cpu"]) == 2
    assert "Unknown conversation template 'vicuna_v9'" in capsys.readouterr().err
