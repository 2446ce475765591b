"""The eval core: what every worker and scorer shares.

common (the `Task` a worker declares and the `main` that runs it: flags, model loading, batches, generation),
questions (question-file readers that name file and line in their errors; `Item`, `ImageRef`), prompting
(prompt rules shared across benchmarks), answers / chunking / run_lock (answer files that resume, merge over GPUs
and refuse a second writer), pruning_args (the DART and pruning flags), scoring_io (scorers' input and result
files), m4c_evaluator (EvalAI's VQA answer normalisation and soft accuracy, used by three benchmarks).
"""
