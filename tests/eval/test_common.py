"""The eval core without a model: chunking, question files, resumable answer files, prompts of each worker."""

import argparse
import json
import math

import pytest

from llava.eval.core.answers import AnswerFile, AnswerFileError, ErrorLog, errors_path, merge_chunks, settings_id
from llava.eval.core.chunking import Chunk, chunk_answers_path, get_chunk, local_device, resolve_chunk, split_list
from llava.eval.core.common import RunStats, build_parser, run_settings
from llava.eval.workers.model_vqa import TASK as VQA_TASK, vqa_items
from llava.eval.workers.model_vqa_loader import TASK as LOADER_TASK, textvqa_text
from llava.eval.benchmarks.mmbench.worker import mmbench_items, read_mmbench
from llava.eval.benchmarks.scienceqa.worker import SINGLE_PRED_PROMPT, science_items
from llava.eval.core.questions import Item, QuestionFileError, Row, read_json_list, read_jsonl


# -- chunking ------------------------------------------------------------------------------------------


def llava_get_chunk(lst, n, k):
    """LLaVA's split_list / get_chunk, written out independently as the reference."""
    size = math.ceil(len(lst) / n)
    return [lst[i:i + size] for i in range(0, len(lst), size)][k]


def test_split_sizes_are_llava_ceil_chunks():
    assert [len(c) for c in split_list(list(range(10)), 3)] == [4, 4, 2]
    assert [len(c) for c in split_list(list(range(10)), 4)] == [3, 3, 3, 1]
    assert [len(c) for c in split_list(list(range(10)), 6)] == [2, 2, 2, 2, 2]  # fewer chunks than asked


@pytest.mark.parametrize("length", [0, 1, 7, 10, 13])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 16])
def test_chunks_concatenate_to_the_original_order(length, n):
    items = list(range(length))
    chunks = [list(get_chunk(items, n, k)) for k in range(n)]
    assert sum(chunks, []) == items
    for k, chunk in enumerate(chunks):
        if chunk:
            assert chunk == llava_get_chunk(items, n, k)


def test_chunk_index_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="--chunk-idx must be in 0..2"):
        get_chunk([1, 2, 3], 3, 3)


def test_chunk_from_flags_env_or_default():
    env = {"RANK": "1", "WORLD_SIZE": "4"}
    assert resolve_chunk(None, None, {}) == Chunk(1, 0)
    assert resolve_chunk(None, None, env) == Chunk(4, 1, from_rank=True)
    assert resolve_chunk(3, 2, env) == Chunk(3, 2)  # explicit flags win over the launcher
    assert resolve_chunk(2, None, env) == Chunk(2, 0)
    with pytest.raises(ValueError, match="RANK / WORLD_SIZE"):
        resolve_chunk(None, None, {"RANK": "4", "WORLD_SIZE": "4"})


def test_chunk_paths_and_rank_devices():
    assert chunk_answers_path("a/b/x.jsonl", 4, 1) == "a/b/x.chunks/4_1.jsonl"
    rank = Chunk(2, 1, from_rank=True)
    assert local_device("cuda", rank, {"LOCAL_RANK": "1"}) == "cuda:1"
    assert local_device("cuda", Chunk(2, 1), {"LOCAL_RANK": "1"}) == "cuda"  # per-GPU scripts set CUDA_VISIBLE_DEVICES
    assert local_device("cpu", rank, {"LOCAL_RANK": "1"}) == "cpu"


# -- question files ------------------------------------------------------------------------------------


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question_id": 1, "image": "a.png", "text": "q"}\n\n{"question_id": 2, "text": \n')
    with pytest.raises(QuestionFileError, match=rf"{path}:3: not valid JSON"):
        read_jsonl(str(path))


def test_missing_field_names_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question_id": 1, "image": "a.png", "text": "q"}\n{"question_id": 2, "image": "b.png"}\n')
    rows = read_jsonl(str(path))
    with pytest.raises(QuestionFileError, match=rf"{path}:2: missing field\(s\) 'text'"):
        vqa_items(rows[1], argparse.Namespace(image_folder="imgs"))


@pytest.mark.parametrize("entry, message", [
    ({"id": 1, "image": None, "conversations": [{"value": "q"}]}, r"field 'image' must be a string, got null"),
    ({"id": 1, "image": 5, "conversations": [{"value": "q"}]}, r"field 'image' must be a string, got int 5"),
    ({"id": None, "conversations": [{"value": "q"}]}, r"field 'id' must be a string or an integer, got null"),
    ({"id": True, "conversations": [{"value": "q"}]}, r"field 'id' must be a string or an integer, got bool true"),
    ({"id": "a", "conversations": [{"value": ["q"]}]}, r"conversations\[0\].value must be a string, got list"),
])
def test_science_fields_of_the_wrong_type_name_the_entry(entry, message):
    with pytest.raises(QuestionFileError, match=rf"f\[3\]: {message}"):
        science_items(Row("f[3]", entry), argparse.Namespace(image_folder="imgs", single_pred_prompt=False))


@pytest.mark.parametrize("reader, content", [
    (read_jsonl, b'{"question_id": 1, "image": "a.png", "text": "q"}\n{"question_id": 2, "text": "caf\xe9"}\n'),
    (read_json_list, b'[\n  {"id": "1"},\n  {"id": "caf\xe9"}\n]'),
    (read_mmbench, b"index\tquestion\timage\tA\tB\n1\tcaf\xe9\taGk=\tx\ty\n"),
])
def test_bytes_that_are_not_utf8_name_the_line(tmp_path, reader, content):
    path = tmp_path / "questions"
    path.write_bytes(content)
    line = content[: content.index(b"\xe9")].count(b"\n") + 1
    column = content.index(b"\xe9") - content.rfind(b"\n", 0, content.index(b"\xe9"))
    with pytest.raises(QuestionFileError, match=rf"{path}:{line}: not UTF-8 text \(byte 0xe9 at column {column}\)"):
        reader(str(path))


def test_json_list_and_missing_file(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([{"id": "a"}, 3]))
    with pytest.raises(QuestionFileError, match=r"q.json\[1\]: expected a JSON object"):
        read_json_list(str(path))
    with pytest.raises(QuestionFileError, match="question file not found"):
        read_jsonl(str(tmp_path / "nope.jsonl"))


def test_vqa_item_is_llavas_question_line():
    row = Row("q:1", {"question_id": 7, "image": "x.jpg", "text": "What?\nAnswer briefly.", "category": "c"})
    (item,) = vqa_items(row, argparse.Namespace(image_folder="/data/imgs"))
    assert item.record == {"question_id": 7, "prompt": "What?\nAnswer briefly."}
    assert item.text == "What?\nAnswer briefly."
    assert item.images[0].path == "/data/imgs/x.jpg"


def test_textvqa_variant_only_for_anyres_models():
    text = "what is it?\nReference OCR token: a, b\nAnswer the question using a single word or phrase."
    on = argparse.Namespace(is_textvqa=True)
    llava_next = argparse.Namespace(image_aspect_ratio="anyres")
    assert textvqa_text(text, llava_next, on) == "what is it?\nAnswer the question using a single word or phrase."
    assert textvqa_text(text, argparse.Namespace(image_aspect_ratio="pad"), on) == text
    assert textvqa_text(text, llava_next, argparse.Namespace(is_textvqa=False)) == text


def test_science_items_with_and_without_image():
    args = argparse.Namespace(image_folder="imgs", single_pred_prompt=True)
    turn = {"from": "human", "value": "<image>\nContext: c\nQuestion: q?\nOptions: (A) x (B) y"}
    (with_image,) = science_items(Row("f[0]", {"id": "5", "image": "5/image.png", "conversations": [turn]}), args)
    assert with_image.text == f"Context: c\nQuestion: q?\nOptions: (A) x (B) y\n{SINGLE_PRED_PROMPT}"
    assert with_image.record["prompt"] == "<image>\n" + with_image.text
    assert with_image.images[0].path == "imgs/5/image.png"
    (text_only,) = science_items(Row("f[1]", {"id": "6", "conversations": [{"value": "Question: q?"}]}), args)
    assert text_only.images == () and text_only.record == {"question_id": "6", "prompt": text_only.text}
    with pytest.raises(QuestionFileError, match=r"f\[2\]: conversations\[0\].value is missing"):
        science_items(Row("f[2]", {"id": "7", "conversations": []}), args)


def write_tsv(path, rows):
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"]
    lines = ["\t".join(header)] + ["\t".join(str(row.get(h, "")) for h in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_mmbench_rows_options_and_rounds(tmp_path):
    path = tmp_path / "mmb.tsv"
    write_tsv(path, [
        {"index": 3, "question": "Which?", "hint": "nan", "A": "cat", "B": "dog", "C": "cow", "D": "", "image": "aGk="},
        {"index": 4, "question": "Why?", "hint": "Look.", "A": "x", "B": "y", "C": "", "D": "", "image": "aGk="},
    ])
    rows = read_mmbench(str(path))
    args = argparse.Namespace(all_rounds=True, single_pred_prompt=True, lang="cn")
    rounds = mmbench_items(rows[0], args)
    assert [it.record["round_id"] for it in rounds] == [0, 1, 2]
    assert rounds[0].record["prompt"] == "Which?\nA. cat\nB. dog\nC. cow"
    assert rounds[1].record["prompt"] == "Which?\nA. dog\nB. cow\nC. cat"
    assert rounds[1].record["options"] == ["dog", "cow", "cat"] and rounds[1].record["option_char"] == ["B", "C", "A"]
    assert rounds[0].text == rounds[0].record["prompt"] + "\n请直接回答选项字母。"
    assert rounds[0].record["question_id"] == 3 and rounds[0].images[0].base64 == "aGk="
    (single,) = mmbench_items(rows[1], argparse.Namespace(all_rounds=False, single_pred_prompt=False, lang="en"))
    assert single.record["prompt"] == single.text == "Look.\nWhy?\nA. x\nB. y"


def test_mmbench_tsv_errors_name_the_line(tmp_path):
    path = tmp_path / "mmb.tsv"
    path.write_text("index\tquestion\timage\tA\tB\n1\tq\taGk=\tx\n")
    with pytest.raises(QuestionFileError, match=rf"{path}:2: 4 cells, the header has 5"):
        read_mmbench(str(path))
    path.write_text("index\tquestion\tA\tB\n")
    with pytest.raises(QuestionFileError, match="missing column"):
        read_mmbench(str(path))


# -- answer files --------------------------------------------------------------------------------------


def item(qid, prompt="q"):
    return Item({"question_id": qid, "prompt": prompt}, prompt)


def answer_line(qid, prompt="q", settings="s1"):
    return {"question_id": qid, "prompt": prompt, "text": "a", "metadata": {"settings_id": settings}}


def test_resume_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [json.dumps(answer_line(i)) for i in range(3)]
    path.write_text("\n".join(lines) + "\n" + lines[0][:17])  # killed while writing the 4th line
    answers = AnswerFile(str(path), ("question_id", "prompt"), "s1")
    assert [it.record["question_id"] for it in answers.pending([item(i) for i in range(5)])] == [3, 4]
    answers.write(answer_line(3))
    answers.close()
    assert [json.loads(x)["question_id"] for x in path.read_text().splitlines()] == [0, 1, 2, 3]


def test_resume_keeps_a_complete_last_line_without_newline(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(answer_line(0)))
    answers = AnswerFile(str(path), ("question_id", "prompt"), "s1")
    answers.write(answer_line(1))
    answers.close()
    assert [json.loads(x)["question_id"] for x in path.read_text().splitlines()] == [0, 1]


def test_questions_sharing_an_id_are_told_apart_by_prompt(tmp_path):
    """TextVQA: question_id is the image id, shared by the questions about one image."""
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(answer_line("img", "q1")) + "\n")
    answers = AnswerFile(str(path), ("question_id", "prompt"), "s1")
    todo = answers.pending([item("img", "q1"), item("img", "q2"), item("img", "q1")])
    assert [it.record["prompt"] for it in todo] == ["q2", "q1"]  # an identical duplicate is answered again
    answers.close()


def test_other_settings_or_broken_lines_refuse_to_resume(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(answer_line(0, settings="old")) + "\n")
    with pytest.raises(AnswerFileError, match="other settings.*--overwrite"):
        AnswerFile(str(path), ("question_id",), "new")
    AnswerFile(str(path), ("question_id",), "new", overwrite=True).close()
    assert path.read_text() == ""
    path.write_text("garbage\n" + json.dumps(answer_line(0)) + "\n")
    with pytest.raises(AnswerFileError, match=rf"{path}:1: not a JSON object"):
        AnswerFile(str(path), ("question_id",), "s1")


def test_errors_sidecar_is_per_run(tmp_path):
    answers = tmp_path / "a.jsonl"
    assert errors_path(str(answers)) == str(tmp_path / "a.errors.jsonl")
    log = ErrorLog(errors_path(str(answers)))
    log.add(item(1), "image file not found: x.png")
    log.close()
    assert json.loads((tmp_path / "a.errors.jsonl").read_text())["error"] == "image file not found: x.png"
    ErrorLog(errors_path(str(answers))).close()  # a run without errors leaves no stale sidecar
    assert not (tmp_path / "a.errors.jsonl").exists()


def test_merge_chunks_in_order_with_sidecars(tmp_path):
    parts = [tmp_path / f"2_{k}.jsonl" for k in range(2)]
    parts[0].write_text("a\nb\n")
    parts[1].write_text("c\n")
    (tmp_path / "2_1.errors.jsonl").write_text("e\n")
    merge_chunks([str(p) for p in parts], str(tmp_path / "m.jsonl"))
    assert (tmp_path / "m.jsonl").read_text() == "a\nb\nc\n"
    assert (tmp_path / "m.errors.jsonl").read_text() == "e\n"
    with pytest.raises(FileNotFoundError, match="missing chunk"):
        merge_chunks([str(tmp_path / "none.jsonl")], str(tmp_path / "m.jsonl"))


def test_settings_fingerprint_ignores_where_and_how_fast():
    parser = build_parser(LOADER_TASK)
    base = ["--model-path", "m", "--sparse", "--max_num_trunction", "64"]
    fingerprint = lambda *extra: settings_id(run_settings(parser.parse_args(base + list(extra))))  # noqa: E731
    assert fingerprint() == fingerprint("--num-chunks", "3", "--chunk-idx", "1", "--answers-file", "x",
                                        "--device", "cpu", "--num-workers", "2", "--attn_implementation", "eager")
    assert fingerprint() != fingerprint("--max_num_trunction", "128")
    assert fingerprint() != fingerprint("--is_textvqa")
    # Without --sparse the other DART flags do not matter.
    plain = build_parser(VQA_TASK)
    assert settings_id(run_settings(plain.parse_args(["--reduction_ratio", "0.5"]))) == settings_id(
        run_settings(plain.parse_args([])))


def test_summary_line():
    stats = RunStats(answered=4, already_answered=2, skipped=1, errors_file="a.errors.jsonl",
                     kept_image_tokens=[132, 132], image_tokens=[576, 576], generated_tokens=40,
                     generation_seconds=2.0, seconds=3.25)
    assert stats.summary() == ("answered 4 questions (2 already answered); skipped 1 (see a.errors.jsonl); "
                               "image tokens kept per question 132.0 of 576.0; 20.0 tokens/s; 3.2 s")


def test_settings_fingerprint_changes_when_the_weights_at_the_same_path_change(tmp_path):
    ckpt = tmp_path / "ckpt"
    (ckpt / "vision_tower").mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    weights = ckpt / "vision_tower" / "model.safetensors"
    big = ckpt / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * 8)
    big.write_bytes(b"\0" * (3 << 20))  # 3 MiB: only its first and last MiB are read
    parser = build_parser(LOADER_TASK)
    fingerprint = lambda: settings_id(run_settings(parser.parse_args(["--model-path", str(ckpt)])))  # noqa: E731
    before = fingerprint()
    (ckpt / "config.json").write_text('{"note": "not a weight file"}')
    assert fingerprint() == before
    weights.write_bytes(bytes(range(256)) * 7 + bytes(reversed(range(256))))  # same size, new values
    retrained = fingerprint()
    assert retrained != before
    with open(big, "r+b") as f:  # a change in the last MiB of a large file
        f.seek((3 << 20) - 10)
        f.write(b"x")
    assert fingerprint() != retrained
    # Resuming an answers file written before the retraining is refused, not silently reused.
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 1, "text": "a", "metadata": {"settings_id": "%s"}}\n' % before)
    with pytest.raises(AnswerFileError, match="other settings"):
        AnswerFile(str(answers), ["question_id"], fingerprint())
