"""Evaluation: answering benchmarks with a (pruned) model and scoring them as the official tools do.

    llava/eval/
        core/        the eval core every worker runs on: flags, question readers, batching, answer files
                     (resume, locks, chunks), prompts, scorer I/O
        workers/     the workers shared by many benchmarks (model_vqa_loader: short answers; model_vqa: open answers)
        benchmarks/  one folder per benchmark (record, worker where it needs its own, official scorer, converters,
                     sample-data writer) and the registry that scripts, the sweep and the docs read
        sweep/       accuracy against kept image tokens: benchmarks x pruning methods x budgets
        speed/       time to first token and throughput (prefill_benchmark, throughput_benchmark), and the GPU check
        cli/         run_llava: one question about one image or video from the command line

The modules directly in this folder are thin entry points that keep the documented commands working
(`python -m llava.eval.eval_textvqa` runs `llava.eval.benchmarks.textvqa.scorer`); new code imports from the
folders above.
"""
