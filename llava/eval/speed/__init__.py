"""Speed: prefill_benchmark (time to first token, FLOPs and KV cache with and without pruning, on the embedded
default or the shape of a released model), throughput_benchmark (answers per second over a question set), and
gpu_check (the checks only a GPU can run, in one script)."""
