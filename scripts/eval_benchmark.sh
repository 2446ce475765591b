#!/usr/bin/env bash
# Run one registered benchmark: its workers (one per GPU in CUDA_VISIBLE_DEVICES), then its official scorer and
# converters, as its record in llava/eval/benchmarks/<folder>/ lists them (`python -m llava.eval.benchmarks list`).
# Usage: [CKPT=...] [CUDA_VISIBLE_DEVICES=0,1,...] bash scripts/eval_benchmark.sh BENCHMARK [RATIO] [MAX_KEPT]
# scripts/v1_5/eval/<benchmark>.sh and scripts/v1_6/eval/<benchmark>.sh are this line for one benchmark.
# (settings and environment: scripts/eval_lib.sh; data layout: docs/Evaluation.md)
if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: bash scripts/eval_benchmark.sh BENCHMARK [RATIO] [MAX_KEPT]  (benchmarks: python -m llava.eval.benchmarks list)" >&2
    exit 2
fi
BENCHMARK=$1
shift
source "$(dirname "${BASH_SOURCE[0]}")/eval_lib.sh" "$@"

# The plan is read whole before any step runs, so that an unknown benchmark fails before a worker starts.
PLAN=$("$PY" -m llava.eval.benchmarks plan "$BENCHMARK" --data-root "$DATA_ROOT" --name "$NAME")
if [[ -z $PLAN ]]; then echo "error: the registry gave no steps for $BENCHMARK" >&2; exit 1; fi
mapfile -t STEPS <<< "$PLAN"
for line in "${STEPS[@]}"; do
    eval "step=($line)"  # the plan's lines are shell-quoted words (shlex.join)
    case ${step[0]} in
        answer) eval_answers "${step[@]:1}" ;;
        run) "$PY" -m "${step[@]:1}" ;;
        mkdir) mkdir -p "${step[1]}" ;;
        say) echo "${step[1]}" ;;
        *) echo "error: unknown step '${step[0]}' in the plan of $BENCHMARK" >&2; exit 1 ;;
    esac
done
