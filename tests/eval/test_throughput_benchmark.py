"""The throughput benchmark end to end on small settings (timings themselves are not asserted)."""

import json
from types import SimpleNamespace

import torch

from llava.eval.speed.prefill_benchmark import build_model
from llava.eval.speed.throughput_benchmark import generate_from_embeddings, main
from llava.model.pruning import make_dart_config


def test_embedded_default_rows_for_every_batch_size_and_variant(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    argv = ["--models", "embedded", "--batch-sizes", "1", "3", "--questions", "5", "--rounds", "1", "--warmup", "0",
            "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["batch_size"], r["variant"]) for r in rows] == [(1, "vanilla"), (1, "dart-128"), (3, "vanilla"),
                                                               (3, "dart-128")]
    assert all(r["questions"] == 5 and r["questions_per_second"] > 0 for r in rows)
    # 576 image tokens per question; DART at max_num_trunction 128 keeps 4 pivots + 8 * 16.
    assert {r["variant"]: r["mean_kept_image_tokens"] for r in rows} == {"vanilla": 576, "dart-128": 132}
    assert [r["speedup_over_smallest_batch"] for r in rows[:2]] == [1.0, 1.0]
    printed = capsys.readouterr().out
    assert "vs batch 1" in printed and "summary: embedded: batch 3 answers" in printed


def test_ragged_prompts_from_embeddings_keep_the_budget_in_every_row():
    model = build_model(SimpleNamespace(hidden_size=64, intermediate_size=128, layers=4, heads=4,
                                        attn_implementation="sdpa", device="cpu"))
    model.config.DART_config = make_dart_config(K=2, max_num_trunction=64)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randn(35 + 576 + n, 64, generator=g) * 0.02 for n in (10, 25, 40)]
    assert generate_from_embeddings(model, prompts, new_tokens=2) == [68, 68, 68]
