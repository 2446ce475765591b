"""The synthetic benchmarks: official layouts, scorer-facing fields, ground truth, disjointness from training."""

import base64
import csv
import io
import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llava.data import write_eval_sets
from llava.data.layouts import DEFAULT_EVAL_SEED, SCENES_FILE
from llava.data.layouts.common import ground_truth_from_dict, ground_truth_split
from llava.eval.benchmarks.mmbench.sample import MMBENCH_COLUMNS
from llava.data.questions import LETTERS, OPTION_PROMPT, SHORT_ANSWER_PROMPT
from llava.data.scenes import COLORS, Scene
from llava.data.shapes import render
from llava.data.synthetic import training_scene

from test_synthetic import expected_answer

COMMITTED = Path(__file__).resolve().parents[2] / "playground" / "data" / "eval"
TEXT_SUFFIXES = {".json", ".jsonl", ".txt", ".md"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_eval_sets(root, seed=DEFAULT_EVAL_SEED, n=60)
    return root


@pytest.fixture(scope="module")
def truth(root):
    rows = [json.loads(line) for line in (root / SCENES_FILE).read_text().splitlines()]
    return {row["image"]: ground_truth_from_dict(row["scene"]) for row in rows}


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def tsv_rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))


def decoded_frames(path: Path) -> np.ndarray:
    from llava.video import load_video

    return np.stack([np.asarray(frame, dtype=np.int16) for frame in load_video(path, max_frames=10_000).frames])


def test_deterministic_and_seeded(root, tmp_path):
    """Byte for byte, except the MP4s: libx264 does not always give the same bytes for the same frames (seen on
    loaded CI machines, a few bytes of a few files), so those are compared by what they decode to."""
    write_eval_sets(tmp_path / "same", seed=DEFAULT_EVAL_SEED, n=60)
    write_eval_sets(tmp_path / "other", seed=DEFAULT_EVAL_SEED + 1, n=60)
    same, other, first = files(tmp_path / "same"), files(tmp_path / "other"), files(root)
    assert set(same) == set(first)
    videos = sorted(name for name in same if name.endswith(".mp4"))
    assert {name: data for name, data in same.items() if name not in videos} == {
        name: data for name, data in first.items() if name not in videos}
    for name in videos:
        a, b = decoded_frames(tmp_path / "same" / name), decoded_frames(root / name)
        assert a.shape == b.shape and np.abs(a - b).mean() < 1.0, name
    assert other["pope/llava_pope_test.jsonl"] != same["pope/llava_pope_test.jsonl"]


def ignored_by_git(folder: Path) -> set[str]:
    """Files under `folder` that git ignores (answers, scores, uploads of local runs), relative to it."""
    out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "."], cwd=folder,
                         capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


def test_committed_sets_are_current(root):
    """playground/data/eval holds what the generator writes now: text files byte for byte (the MMBench TSV
    up to its base64 images), images by name, and nothing stale in the generated folders."""
    fresh, committed = files(root), files(COMMITTED)
    assert set(fresh) <= set(committed), sorted(set(fresh) - set(committed))[:5]
    # Stale: a file (that git keeps) in a folder the generator writes to, which the generator no longer writes.
    written_folders = {str(Path(k).parent) for k in fresh}
    ignored = ignored_by_git(COMMITTED)
    stale = [k for k in committed if str(Path(k).parent) in written_folders and k not in fresh and k not in ignored]
    assert not stale, stale[:5]
    for name, data in fresh.items():
        if Path(name).suffix in TEXT_SUFFIXES:
            assert committed[name] == data, name
    tsv = "mmbench/mmbench_dev_20230712.tsv"
    assert [{k: v for k, v in r.items() if k != "image"} for r in tsv_rows(root / tsv)] == \
        [{k: v for k, v in r.items() if k != "image"} for r in tsv_rows(COMMITTED / tsv)]


def test_small_enough_to_commit(root):
    assert sum(len(v) for v in files(root).values()) < 8 * 2**20


def test_scenes_are_held_out_and_rendered_faithfully(root, truth):
    images = {k for k in files(root) if k.endswith((".jpg", ".jpeg", ".png"))}
    assert images == {k for k in truth if "#" not in k}
    train = {training_scene(0, i).signature() for i in range(3000)}
    train |= {training_scene(1, i).signature() for i in range(1000)}
    for name, scene in truth.items():
        assert ground_truth_split(scene) == "eval", name
        if not isinstance(scene, Scene):  # pages and charts: held out by their own generators' split
            continue
        assert scene.signature() not in train
        if "#" in name:
            continue
        image = Image.open(root / name).convert("RGB")
        for s in scene.shapes:  # JPEG: close, not exact
            assert max(abs(a - b) for a, b in zip(image.getpixel((s.cx, s.cy)), COLORS[s.color])) <= 12, name


def test_textvqa(root, truth):
    base = root / "textvqa"
    annotation = json.loads((base / "TextVQA_0.5.1_val.json").read_text())
    assert annotation["dataset_version"] == "0.5.1"
    # eval_textvqa keys annotations by (image_id, question.lower()) and looks results up by question_id.
    by_key = {(a["image_id"], a["question"].lower()): a for a in annotation["data"]}
    lines = jsonl(base / "llava_textvqa_val_v051_ocr.jsonl")
    assert len(lines) == len(by_key) == 60
    for line in lines:
        question, ocr, instruction = line["text"].split("\n")
        assert ocr.startswith("Reference OCR token: ") and instruction == SHORT_ANSWER_PROMPT
        entry = by_key[(line["question_id"], question.lower())]
        assert line["image"] == f"{entry['image_id']}.jpg" and (base / "train_images" / line["image"]).is_file()
        assert len(entry["answers"]) == 10 and isinstance(entry["question_id"], int)
        scene = truth[f"textvqa/train_images/{line['image']}"]
        assert entry["answers"][0] == expected_answer(scene, question)
        tokens = ocr[len("Reference OCR token: "):].split(", ")
        assert scene.word.text in tokens and 2 <= len(tokens) <= 3


def test_pope(root, truth):
    base = root / "pope"
    questions = jsonl(base / "llava_pope_test.jsonl")
    assert len({q["question_id"] for q in questions}) == len(questions) == 60
    assert sorted(p.name for p in (base / "coco").iterdir()) == [
        f"coco_pope_{c}.json" for c in ("adversarial", "popular", "random")]
    for label_file in (base / "coco").iterdir():
        category = label_file.name[len("coco_pope_"):-len(".json")]
        labels = jsonl(label_file)
        # eval_pope pairs the k-th answer of a category with the k-th label line.
        ours = [q for q in questions if q["category"] == category]
        assert [q["question_id"] for q in ours] == [x["question_id"] for x in labels]
        assert Counter(x["label"] for x in labels) == {"yes": 10, "no": 10}
        for q, x in zip(ours, labels):
            assert q["text"] == f"{x['text']}\n{SHORT_ANSWER_PROMPT}" and q["image"] == x["image"]
            assert q["image"].startswith("COCO_val2014_") and (base / "val2014" / q["image"]).is_file()
            assert x["label"] == expected_answer(truth[f"pope/val2014/{q['image']}"], x["text"])


def test_mme(root, truth):
    base = root / "MME" / "MME_Benchmark_release_version"
    gt, per_file = {}, defaultdict(list)  # read as convert_answer_to_mme.get_gt does
    for category_dir in base.iterdir():
        for txt in category_dir.glob("*.txt"):
            for line in txt.read_text().splitlines():
                question, answer = line.split("\t")
                gt[(category_dir.name, txt.name, question)] = answer
                per_file[(category_dir.name, txt.name)].append(answer)
    assert sorted(p.name for p in base.iterdir()) == sorted(["existence", "count", "position", "color", "OCR"])
    assert all(sorted(v) == ["No", "Yes"] for v in per_file.values())  # acc+ pairs
    lines = jsonl(root / "MME" / "llava_mme.jsonl")
    assert len(lines) == 2 * len(per_file) == 60
    for line in lines:
        category, name = line["question_id"].split("/")
        assert line["image"] == line["question_id"] and (base / line["image"]).is_file()
        prompt = line["text"].replace(SHORT_ANSWER_PROMPT, "").strip() + " Please answer yes or no."
        answer = gt[(category, name.split(".")[0] + ".txt", prompt)]
        scene = truth[f"MME/MME_Benchmark_release_version/{line['image']}"]
        assert answer.lower() == expected_answer(scene, line["text"].split("\n")[0])


def test_gqa(root, truth):
    base = root / "gqa"
    questions = json.loads((base / "data" / "testdev_balanced_questions.json").read_text())
    lines = jsonl(base / "llava_gqa_testdev_balanced.jsonl")
    assert [line["question_id"] for line in lines] == list(questions) and len(lines) == 60
    for line in lines:
        q = questions[line["question_id"]]
        assert isinstance(line["question_id"], str) and line["image"] == f"{q['imageId']}.jpg"
        assert line["text"] == f"{q['question']}\n{SHORT_ANSWER_PROMPT}"
        assert (base / "data" / "images" / line["image"]).is_file()
        assert q["isBalanced"] is True and q["types"]["structural"] in ("query", "verify", "choose")
        assert all({"operation", "argument", "dependencies"} <= set(op) for op in q["semantic"])
        assert q["answer"] == expected_answer(truth[f"gqa/data/images/{line['image']}"], q["question"])
    assert any(q["groups"]["global"] for q in questions.values())  # eval.py's chi-square needs one group
    binary = Counter(q["answer"] for q in questions.values() if q["types"]["structural"] == "verify")
    assert abs(binary["yes"] - binary["no"]) <= 1


def test_scienceqa(root, truth):
    base = root / "scienceqa"
    problems = json.loads((base / "problems.json").read_text())
    test_ids = json.loads((base / "pid_splits.json").read_text())["test"]
    entries = json.loads((base / "llava_test_CQM-A.json").read_text())
    assert [e["id"] for e in entries] == test_ids == list(problems) and len(entries) == 60
    text_only = 0
    for entry in entries:
        problem = problems[entry["id"]]
        human, gpt = entry["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert gpt["value"] == LETTERS[problem["answer"]] and 2 <= len(problem["choices"]) <= 4
        lines = human["value"].split("\n")
        options = [f"{LETTERS[i]}. {c}" for i, c in enumerate(problem["choices"])]
        assert lines[-len(options):] == options and OPTION_PROMPT not in human["value"]
        if problem["image"] is None:
            text_only += 1
            assert "image" not in entry and "<image>" not in human["value"]
            continue
        assert entry["image"] == f"{entry['id']}/image.png" and (base / "images" / "test" / entry["image"]).is_file()
        assert lines[0] == "<image>" and human["value"].count("<image>") == 1
        context = [f"Context: {problem['hint']}"] if problem["hint"] else []
        assert lines[1:-len(options)] == context + [problem["question"]]
        scene = truth[f"scienceqa/images/test/{entry['image']}"]
        assert problem["choices"][problem["answer"]] == expected_answer(scene, problem["question"])
    assert text_only == 10


def test_mmbench(root, truth):
    path = root / "mmbench" / "mmbench_dev_20230712.tsv"
    assert path.read_text().split("\n", 1)[0].split("\t") == list(MMBENCH_COLUMNS)
    rows = {int(r["index"]): r for r in tsv_rows(path)}
    bases = [i for i in rows if i < 1_000_000]
    assert len(rows) == 4 * len(bases) == 60
    for i in bases:
        group = [rows[i + k * 1_000_000] for k in range(4)]
        scene = truth[f"mmbench/mmbench_dev_20230712.tsv#{i}"]
        image = Image.open(io.BytesIO(base64.b64decode(group[0]["image"])))
        assert image.size == (336, 336) and image.convert("RGB").tobytes() == render(scene).tobytes()
        truth_text = expected_answer(scene, group[0]["question"])
        for k, row in enumerate(group):
            options = [row[c] for c in "ABCD"]
            assert options == [group[0][c] for c in "ABCD"][k:] + [group[0][c] for c in "ABCD"][:k]
            assert row[row["answer"]] == truth_text and row["question"] == group[0]["question"]
            assert row["split"] == "dev" and row["category"] == group[0]["category"]
        assert sorted(r["answer"] for r in group) == ["A", "B", "C", "D"]


def test_readme_documents_every_set(root):
    text = (root / "SYNTHETIC_README.md").read_text()
    names = ("TextVQA", "POPE", "MME", "GQA", "ScienceQA", "MMBench", "MMBench-CN", "SEED-Bench", "VizWiz", "VQAv2",
             "MM-Vet", "LLaVA-Bench (in the wild)", "OCRBench", "Q-Bench (LLVisionQA dev)", "Video-MME", "DocVQA",
             "InfographicVQA", "ChartQA", "AI2D (test)", "MMStar")
    for name in names:
        assert f"## {name}\n" in text
    assert text.count("chance level") == len(names)


def test_seed_bench_scores_its_ground_truth_perfectly_and_a_constant_letter_at_chance(root, truth):
    from llava.eval.benchmarks.seed.convert import load_annotations, score_seed

    base = root / "seed_bench"
    lines = jsonl(base / "llava-seed-bench.jsonl")
    data = load_annotations(str(base / "SEED-Bench.json"))
    by_id = {q["question_id"]: q for q in data["questions"]}
    for line in lines:
        assert line["text"].endswith(OPTION_PROMPT) and (base / line["image"]).is_file()
        question = by_id[line["question_id"]]
        options = [question[f"choice_{c}"] for c in "abcd"]
        scene = truth[f"seed_bench/{line['image']}"]
        assert options[LETTERS.index(question["answer"])] == expected_answer(scene, question["question"])
    perfect = score_seed(data, [{"question_id": q["question_id"], "text": q["answer"]} for q in data["questions"]])
    assert perfect["accuracy"] == 100.0 and perfect["image"]["questions"] == 60
    always_a = score_seed(data, [{"question_id": q["question_id"], "text": "A"} for q in data["questions"]])
    assert always_a["accuracy"] < 50


def test_ocrbench_scores_its_answers_fully_and_a_constant_answer_rarely(root, truth):
    from llava.eval.benchmarks.ocrbench.scorer import load_annotations, score_ocrbench

    base = root / "OCRBench"
    entries = load_annotations(str(base / "OCRBench" / "OCRBench.json"))
    for entry in entries:
        scene = truth[f"OCRBench/OCRBench_Images/{entry['image_path']}"]
        answer = entry["answers"] if isinstance(entry["answers"], str) else entry["answers"][0]
        assert answer.lower() == expected_answer(scene, entry["question"]).lower()
    assert {type(e["answers"]) for e in entries} == {str, list}  # both forms of OCRBench.json occur
    perfect, _ = score_ocrbench(entries, [{"question_id": i, "text": e["answers"] if isinstance(e["answers"], str)
                                           else e["answers"][0]} for i, e in enumerate(entries)])
    assert perfect["score"] == perfect["questions"] == 60
    constant, _ = score_ocrbench(entries, [{"question_id": i, "text": "red"} for i in range(len(entries))])
    assert constant["score"] < 15


def test_qbench_scores_its_answers_fully_and_a_constant_letter_near_chance(root, truth):
    from llava.eval.benchmarks.qbench.scorer import load_questions, score_qbench

    base = root / "qbench"
    entries = load_questions(str(base / "llvisionqa_dev.json"))
    for entry in entries:
        scene = truth[f"qbench/images_llvisionqa/{entry['img_path']}"]
        assert entry["correct_ans"].lower() == expected_answer(scene, entry["question"]).lower()
        assert len(entry["candidates"]) == {0: 2, 1: 3, 2: 4}[entry["type"]]
    assert Counter(e["concern"] for e in entries) == {0: 15, 1: 15, 2: 15, 3: 15}
    letters = [LETTERS[e["candidates"].index(e["correct_ans"])] for e in entries]
    assert score_qbench(entries, [{"question_id": i, "text": t} for i, t in enumerate(letters)])["accuracy"] == 100
    assert score_qbench(entries, [{"question_id": i, "text": "A"} for i in range(len(entries))])["accuracy"] < 55


def test_submission_sets_convert_as_their_servers_expect(root, truth):
    from llava.eval.benchmarks.vizwiz.convert import convert as vizwiz
    from llava.eval.benchmarks.vqav2.convert import convert as vqav2

    questions = jsonl(root / "vizwiz" / "llava_test.jsonl")
    for q in questions:
        assert q["question_id"] == q["image"] and (root / "vizwiz" / "test" / q["image"]).is_file()
        assert q["answer"] == expected_answer(truth[f"vizwiz/test/{q['image']}"], q["text"].split("\n")[0])
    rows = vizwiz([{"question_id": q["question_id"], "text": q["answer"]} for q in questions], questions)
    assert [r["answer"] for r in rows] == [q["answer"] for q in questions]

    dev = jsonl(root / "vqav2" / "llava_vqav2_mscoco_test-dev2015.jsonl")
    test = jsonl(root / "vqav2" / "llava_vqav2_mscoco_test2015.jsonl")
    assert len(dev) == 60 and {q["question_id"] for q in dev} < {q["question_id"] for q in test}
    for q in test:
        scene = truth[f"vqav2/test2015/{q['image']}"]
        assert q["answer"] == expected_answer(scene, q["text"].split("\n")[0])
    uploaded, missing = vqav2([{"question_id": q["question_id"], "text": q["answer"]} for q in dev], test)
    assert len(uploaded) == len(test) and missing == len(test) - len(dev)


def test_gpt_graded_sets_carry_their_references(root, truth):
    lines = jsonl(root / "mm-vet" / "llava-mm-vet.jsonl")
    reference = json.loads((root / "mm-vet" / "mm-vet.json").read_text())
    assert [f"v1_{q['question_id']}" for q in lines] == list(reference)
    for q in lines:
        assert reference[f"v1_{q['question_id']}"]["question"] == q["text"]
        assert (root / "mm-vet" / "images" / q["image"]).is_file()
    bench = root / "llava-bench-in-the-wild"
    questions, answers = jsonl(bench / "questions.jsonl"), jsonl(bench / "answers_gpt4.jsonl")
    assert [a["question_id"] for a in answers] == [q["question_id"] for q in questions]
    assert Counter(q["category"] for q in questions) == {"conv": 20, "detail": 20, "complex": 20}
    captions = {c["image"]: c["caption"] for c in jsonl(bench / "context.jsonl")}
    assert set(captions) == {q["image"] for q in questions}
