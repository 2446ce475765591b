"""The prefill benchmark's cost model and a tiny end-to-end run (timings themselves are not asserted)."""

import json

import pytest

from llava.eval.speed.prefill_benchmark import ideal_speedup, layer_flops, main, parse_args


def test_layer_flops_by_hand():
    # D=2, I=3, kv=2, L=2: linear 2*(4*4 + 4*4 + 6*6) = 136; attention 2*2*2*3 = 24
    assert layer_flops(2, hidden=2, intermediate=3, kv_dim=2) == 160


def test_ideal_speedup_is_the_flop_ratio():
    full, pruned = layer_flops(100, 8, 16, 8), layer_flops(40, 8, 16, 8)
    expected = 10 * full / (3 * full + 7 * pruned)
    assert ideal_speedup(100, [(3, 40)], layers=10, hidden=8, intermediate=16, kv_dim=8) == pytest.approx(expected)
    assert ideal_speedup(100, [], layers=10, hidden=8, intermediate=16, kv_dim=8) == pytest.approx(1.0)


def test_ideal_speedup_of_several_stages_counts_each_stages_layers():
    # layers 0-1: 100 tokens, 2-4: 60, 5-9: 30
    flops = {n: layer_flops(n, 8, 16, 8) for n in (100, 60, 30)}
    expected = 10 * flops[100] / (2 * flops[100] + 3 * flops[60] + 5 * flops[30])
    assert ideal_speedup(100, [(2, 60), (5, 30)], layers=10, hidden=8, intermediate=16, kv_dim=8) == pytest.approx(expected)


def test_attention_methods_run_beside_dart_with_their_own_stages(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128", "--kept", "16",
            "--methods", "fastv", "pdrop", "--repeats", "1", "--warmup", "0", "--json", str(out)]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert results["fastv-16"]["stages"] == [[2, 35 + 25 + 20]]  # DART's budget: 4 + 8 * 2 image tokens
    # PyramidDrop's stages scaled to 4 layers: 1, 2, 3 keeping int(576 * 0.5, 0.25, 0.125) image tokens
    assert results["pdrop"]["stages"] == [[1, 60 + 288], [2, 60 + 144], [3, 60 + 72]]
    assert results["pdrop"]["kv_cache_bytes"] == (636 + 348 + 204 + 132) * 2 * 64 * 4


def test_tiny_run_reports_every_variant(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128",
            "--kept", "16", "--repeats", "1", "--warmup", "0", "--json", str(out)]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"vanilla", "dart-16", "random-16"}
    assert results["vanilla"]["seq_len_after_k"] == 636
    assert results["dart-16"]["seq_len_after_k"] == 35 + 25 + 4 + 8 * 2
    # layers 0..1 cache all 636 tokens, layers 2..3 only the 80 kept: 4 layers x (keys + values) x 64 floats
    assert results["dart-16"]["kv_cache_bytes"] == (2 * 636 + 2 * 80) * 2 * 64 * 4
    assert "summary: DART keeping 20/576 image tokens (expected 20)" in capsys.readouterr().out


def test_batched_run_reports_the_same_columns_per_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128", "--kept", "16",
            "--methods", "dart", "--repeats", "1", "--warmup", "0", "--batch-size", "3", "--json", str(out)]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert results["dart-16"]["seq_len_after_k"] == 80  # per row, as at batch 1
    assert results["dart-16"]["kv_cache_bytes"] == 3 * (2 * 636 + 2 * 80) * 2 * 64 * 4
    assert "at batch 3" in capsys.readouterr().out


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl", "llava_onevision"])
def test_ratio_families_prune_by_ratio_on_a_gqa_text_model(family, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--family", family, "--layers", "4", "--heads", "4", "--kv-heads", "2", "--hidden-size", "64",
            "--intermediate-size", "128", "--image-tokens", "391", "--prefix-tokens", "15", "--methods", "dart",
            "--repeats", "1", "--warmup", "0", "--json", str(out)]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"vanilla", "dart-0.778"}
    # The reference's Qwen budget: T = int(391 * (1 - 0.778) / 8) = 10, 4 + 8 * 10 = 84 kept of 391.
    assert results["dart-0.778"]["seq_len_after_k"] == 15 + 25 + 84
    # 2 of 4 layers cache all 431 tokens, 2 only 124: keys + values of 2 heads x 16 dims, float32.
    assert results["dart-0.778"]["kv_cache_bytes"] == (2 * 431 + 2 * 124) * 2 * 2 * 16 * 4
    assert "summary: DART keeping 84/391 image tokens (expected 84)" in capsys.readouterr().out


def test_methods_before_the_language_model_run_on_the_reduced_prompt_at_every_batch_size(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128", "--kept", "16",
            "--methods", "visionzip", "divprune", "pooling", "--repeats", "1", "--warmup", "0", "--batch-size", "1", "2",
            "--new-tokens", "3", "--json", str(out)]
    assert main(argv) == 0
    results = {(r["name"], r["batch_size"]): r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {(name, batch) for name in ("vanilla", "visionzip-16", "divprune-16", "pooling-16")
                            for batch in (1, 2)}
    for method in ("visionzip", "divprune", "pooling"):
        for batch in (1, 2):
            r = results[f"{method}-16", batch]
            # DART's budget, 4 + 8 * 2 = 20 image tokens (pooling: a 4 x 5 grid), in every one of the 4 layers
            assert r["seq_len_after_k"] == 35 + 25 + 20 and r["stages"] == []
            assert r["kv_cache_bytes"] == batch * 4 * 80 * 2 * 64 * 4
            assert r["prefill_flops"] == batch * 4 * layer_flops(80, 64, 128, 64)
            assert r["ideal_speedup"] == layer_flops(636, 64, 128, 64) / layer_flops(80, 64, 128, 64)
            assert r["ttft_seconds"] >= r["median_seconds"] and r["decode_ms_per_token"] > 0
            assert r["peak_memory_bytes"] is None  # measured on CUDA only
    assert results["vanilla", 2]["prefill_flops"] == 2 * 4 * layer_flops(636, 64, 128, 64)


@pytest.mark.slow  # about 25 s: twelve methods, and CDPruner's CLIP-L-shaped text stand-in
def test_every_method_runs_at_a_tiny_shape_and_reports_its_kept_count(tmp_path):
    from llava.model.pruning import get_method, method_names

    out = tmp_path / "bench.json"
    argv = ["--layers", "4", "--heads", "4", "--hidden-size", "64", "--intermediate-size", "128", "--kept", "16",
            "--methods", *method_names(), "--repeats", "1", "--warmup", "0", "--new-tokens", "1", "--json", str(out)]
    assert main(argv) == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    text = 35 + 25
    for method in method_names():
        r = results["pdrop" if method == "pdrop" else f"{method}-16"]
        if get_method(method).before_llm:  # reduced before layer 0: DART's 4 + 8 * 2 (pooling: a 4 x 5 grid)
            assert (r["seq_len_after_k"], r["stages"]) == (text + 20, []), method
        elif method in ("pdrop", "sparsevlm"):  # their own stages, each keeping fewer
            kept = [tokens for _, tokens in r["stages"]]
            assert len(kept) == 3 and kept == sorted(kept, reverse=True) and kept[-1] < text + 576, method
        else:  # one stage, DART's count: before layer 2 (dart_k0: before layer 0)
            assert r["stages"] == [[0 if method == "dart_k0" else 2, text + 20]], method


@pytest.mark.parametrize("argv, message", [
    (["--methods", "pooling", "--image-tokens", "2880"], "need one crop's square patch grid"),
    (["--family", "qwen2_vl", "--methods", "visionzip"], "read the vision tower's [CLS] token"),
    (["--family", "qwen2_vl", "--methods", "cdpruner"], "does not run cdpruner"),
])
def test_impossible_method_shapes_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
