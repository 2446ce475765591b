"""The text-only check's data (scripts/tiny/text_only_check.py): LLaVA conversations without an image, the
scene's caption first, 8-14 questions of the chosen types for training and one for evaluation."""

import json

from llava.data.questions import LETTERS



def test_data_files(tmp_path, tiny_script):
    script = tiny_script("text_only_check")
    script.main(["data", "--out", str(tmp_path / "a"), "--n-train", "5", "--n-eval", "30"])
    train = json.loads((tmp_path / "a" / "train.json").read_text())
    evaluation = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert len(train) == 5 and len(evaluation) == 30
    for record in train + evaluation:
        turns = record["conversations"]
        assert "image" not in record and "<image>" not in json.dumps(turns)
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("The image shows a ") and "background.\n" in turns[0]["value"]
        for question, answer in zip(turns[::2], turns[1::2]):
            if "\nA. " in question["value"]:
                assert answer["value"] in LETTERS
            else:
                assert answer["value"] in ("yes", "no")
    assert all(8 <= len(r["conversations"]) // 2 <= 14 for r in train)
    assert all(len(r["conversations"]) == 2 for r in evaluation)
    assert {r["type"] for r in evaluation} == {"exist", "verify", "mc"}
    # Deterministic: the same arguments write the same files.
    script.main(["data", "--out", str(tmp_path / "b"), "--n-train", "5", "--n-eval", "30"])
    assert (tmp_path / "b" / "train.json").read_text() == (tmp_path / "a" / "train.json").read_text()
