"""scripts/tiny/generate_data.py --reuse-images: a new question mix over images written before, without
rendering them again; a clear error when they are not there."""

import json

import pytest


def options_of(human_turn: str) -> list[str]:
    """The option texts of a multiple-choice turn ("A. red" lines), in order."""
    return [line[3:] for line in human_turn.split("\n") if line[:3] in ("A. ", "B. ", "C. ", "D. ")]


@pytest.fixture(scope="module")
def generate_data(tiny_script):
    return tiny_script("generate_data")


def test_reuse_images_writes_the_json_and_leaves_the_images(generate_data, tmp_path):
    generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "4", "--stages", "1"])
    images = sorted((tmp_path / "images" / "seed0").glob("*.png"))
    assert len(images) == 4
    # A sentinel in place of one image: rendering again would overwrite it.
    images[0].write_bytes(b"sentinel")
    generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "4", "--stages", "2", "--reuse-images",
                        "--types", "word", "--turns", "1", "1"])
    assert images[0].read_bytes() == b"sentinel"
    records = [r for r in json.loads((tmp_path / "llava_tiny_finetune.json").read_text()) if "image" in r]
    assert {r["image"] for r in records} <= {f"images/seed0/{p.name}" for p in images}
    assert all("word" in r["conversations"][0]["value"].lower() for r in records)


def test_reuse_images_without_the_images_is_refused(generate_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "3", "--stages", "2",
                            "--reuse-images"])
    assert exit_info.value.code == 2
    assert "3 of the 3 images are missing" in capsys.readouterr().err
    assert not (tmp_path / "llava_tiny_finetune.json").exists()


def test_mc_options_vary_the_option_count_and_change_nothing_else(generate_data, tmp_path):
    common = ["--skip-eval", "--n-images", "12", "--stages", "2", "--types", "mc", "color", "--turns", "4", "4"]
    generate_data.main(["--out", str(tmp_path / "four"), *common])
    generate_data.main(["--out", str(tmp_path / "some"), *common, "--mc-options", "2", "3"])
    four, some = (json.loads((tmp_path / d / "llava_tiny_finetune.json").read_text()) for d in ("four", "some"))
    assert len(four) == len(some)
    counts = set()
    for a, b in zip(four, some):
        for qa, qb, ans_a, ans_b in zip(a["conversations"][::2], b["conversations"][::2],
                                        a["conversations"][1::2], b["conversations"][1::2]):
            options_a, options_b = options_of(qa["value"]), options_of(qb["value"])
            if not options_a:  # an open question: untouched
                assert (qa, ans_a) == (qb, ans_b)
                continue
            assert len(options_a) == 4 and 2 <= len(options_b) <= 3
            counts.add(len(options_b))
            # the same right answer, at the letter the new options give it
            right_a = options_a["ABCD".index(ans_a["value"])]
            assert options_b["ABCD".index(ans_b["value"])] == right_a and set(options_b) <= set(options_a)
    assert counts == {2, 3}


def test_mc_options_out_of_range_is_refused(generate_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "2", "--mc-options", "1", "5"])
    assert "need 2 <= MIN <= MAX <= 4" in capsys.readouterr().err


def test_mc_options_reach_the_described_conversations(generate_data, tmp_path):
    common = ["--skip-eval", "--n-images", "2", "--stages", "0", "2", "--types", "color", "--turns", "1", "1",
              "--n-described", "30", "--described-types", "mc", "--described-in-finetune", "30"]
    generate_data.main(["--out", str(tmp_path / "four"), *common])
    generate_data.main(["--out", str(tmp_path / "some"), *common, "--mc-options", "2", "3"])

    def option_counts(directory, name):
        records = json.loads((tmp_path / directory / name).read_text())
        described = [r for r in records if "image" not in r and r["conversations"][0]["value"].startswith("The image")]
        assert len(described) == 30
        return [len(options_of(r["conversations"][0]["value"])) for r in described]

    for name in ("llava_tiny_described.json", "llava_tiny_finetune.json"):
        assert set(option_counts("four", name)) == {4}
        assert set(option_counts("some", name)) == {2, 3}


def test_text_only_fraction_sets_the_number_of_text_only_questions(generate_data, tmp_path, capsys):
    generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "4", "--stages", "2",
                        "--text-only-fraction", "1.5"])
    records = json.loads((tmp_path / "llava_tiny_finetune.json").read_text())
    text_only = [r for r in records if "image" not in r]
    assert len(text_only) == 6 and len(records) - len(text_only) == 4
    assert all("Answer with the option's letter" in r["conversations"][0]["value"] for r in text_only)
    with pytest.raises(SystemExit):
        generate_data.main(["--out", str(tmp_path), "--skip-eval", "--n-images", "1", "--text-only-fraction", "-1"])
    assert "must be >= 0" in capsys.readouterr().err
