# shellcheck shell=bash
# What every benchmark run shares: settings, "split over the GPUs, run, merge", scoring. scripts/eval_benchmark.sh
# (which every scripts/v1_5/eval/<bench>.sh and scripts/v1_6/eval/<bench>.sh calls) sources it with the arguments
# and then runs the benchmark's steps from its record (llava/eval/benchmarks/<folder>/):
#
#     source "$(dirname "${BASH_SOURCE[0]}")/eval_lib.sh" "$@"     # [RATIO] [MAX_KEPT]
#     eval_answers llava.eval.workers.model_vqa_loader "$DATA_ROOT/textvqa/answers/$NAME.jsonl" --question-file ...
#     "$PY" -m llava.eval.benchmarks.textvqa.scorer ...
#
# Arguments: RATIO (DART --reduction_ratio, default 0.778) and MAX_KEPT (--max_num_trunction, default 128;
# for LLaVA-1.6, the scripts/v1_6/eval/*.sh, --retain_token_num_for_llava_next, default 320).
# Environment (all optional):
#   CKPT        model path or hub id; unset: the embedded default $DEFAULT_CKPT
#   DATA_ROOT   benchmark data in LLaVA's layout (default ./playground/data/eval)
#   NAME        experiment name in the answer file names (default <checkpoint name>-dart-RATIO-MAX_KEPT, on
#               Qwen2-VL / 2.5-VL <checkpoint name>-dart-RATIO, or <checkpoint name> with DART=0); a new name
#               starts new answer files, the same name resumes
#   CUDA_VISIBLE_DEVICES  GPUs to split the questions over, one worker per GPU; unset: one worker (CUDA if
#               available, else the CPU)
#   DART=0      evaluate without pruning
#   PRUNING_METHOD  dart (default), fastv, pdrop, random, sparsevlm, dart_k0, visionzip, divprune, pooling,
#                   vispruner, cdpruner or holov (all but pdrop and sparsevlm keep as many image tokens as DART;
#                   pooling at most as many)
#   CONV_MODE   conversation template (default vicuna_v1)
#   BATCH_SIZE  questions per generate call in each worker (default 1; greedy answers are the same)
#   EVAL_ARGS   extra worker flags, e.g. "--overwrite" or "--num-workers 8"
#   PYTHON      interpreter (default .venv/bin/python, else python)
#   LLAVA_VERSION  1.5 (default) or 1.6: set by scripts/v1_6/eval/*.sh, which run the v1_5 scripts with the
#               1.6 budget and the 1.6 embedded default

set -euo pipefail

# The checkpoint used when CKPT is unset: the embedded default, a tiny LLaVA trained by our own code on
# generated data (scripts/tiny/train_all.sh; its card: checkpoints/llava-v1.5-tiny/README.md).
# The LLaVA-1.6 one (anyres, spatial_unpad) is fine-tuned from it (scripts/tiny/train_llava_next.sh).
LLAVA_VERSION=${LLAVA_VERSION:-1.5}
case $LLAVA_VERSION in
    1.5) DEFAULT_CKPT=checkpoints/llava-v1.5-tiny; DEFAULT_MAX_KEPT=128; RECIPE=scripts/tiny/train_all.sh ;;
    1.6) DEFAULT_CKPT=checkpoints/llava-v1.6-tiny; DEFAULT_MAX_KEPT=320; RECIPE=scripts/tiny/train_llava_next.sh ;;
    *) echo "error: LLAVA_VERSION must be 1.5 or 1.6, got '$LLAVA_VERSION'" >&2; exit 2 ;;
esac

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

RATIO=${1:-0.778}
MAX_KEPT=${2:-$DEFAULT_MAX_KEPT}

# Paths the user gave are relative to where they ran the script; make them absolute before moving to the
# repository root (a CKPT that is not a local path is a hub id and stays as it is).
if [[ -n ${DATA_ROOT:-} && $DATA_ROOT != /* ]]; then DATA_ROOT=$PWD/$DATA_ROOT; fi
if [[ -n ${CKPT:-} && -e $CKPT && $CKPT != /* ]]; then CKPT=$PWD/$CKPT; fi
if [[ -n ${PYTHON:-} && $PYTHON == */* && $PYTHON != /* ]]; then PYTHON=$PWD/$PYTHON; fi
cd "$REPO_ROOT"

if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then
    PY=$REPO_ROOT/.venv/bin/python
else
    PY=python
fi
# A bare `python` (no editable install) still finds the package.
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

DATA_ROOT=${DATA_ROOT:-./playground/data/eval}
CONV_MODE=${CONV_MODE:-vicuna_v1}

if [[ -z ${CKPT:-} ]]; then
    CKPT=$DEFAULT_CKPT
    if [[ ! -f $CKPT/config.json ]]; then
        echo "error: the embedded default checkpoint $CKPT is missing (rebuild it: bash $RECIPE)" >&2
        exit 1
    fi
fi

MODEL_NAME=$(basename "${CKPT%/}")

# The families whose DART budget is the reduction ratio alone (Qwen2-VL / 2.5-VL): their model types and their
# releases' hub ids, as the family registry declares them (`ratio_budget`, `model_types`, `hub_name_pattern`;
# tests/model/test_families.py checks these two lines against it). By the config of a local checkpoint, else
# by the hub id.
RATIO_BUDGET_MODEL_TYPES='qwen2_vl|qwen2_5_vl|qwen3_vl|qwen3_vl_moe|llava_onevision'
RATIO_BUDGET_HUB_IDS='qwen2(\.5)?-vl|qwen3-vl|llava-onevision'
_budget_is_the_ratio() {
    if [[ -f $1/config.json ]]; then
        grep -Eq "\"model_type\": *\"($RATIO_BUDGET_MODEL_TYPES)\"" "$1/config.json"
    else
        [[ ${1,,} =~ $RATIO_BUDGET_HUB_IDS ]]
    fi
}

if [[ ${DART:-1} == 0 ]]; then
    DART_ARGS=()
    NAME=${NAME:-$MODEL_NAME}
else
    # The paper's LLaVA-1.5 setting: prune after layer 1 (K=2), 4 image + 4 text pivots.
    METHOD=${PRUNING_METHOD:-dart}
    DART_ARGS=(--sparse --pruned_layer 2 --pivot_image_token 4 --pivot_text_token 4 --attn_implementation sdpa
               --reduction_ratio "$RATIO")
    if [[ $LLAVA_VERSION == 1.6 ]]; then  # the DART release's 1.6 budget: M = min(retain, m - 4)
        DART_ARGS+=(--retain_token_num_for_llava_next "$MAX_KEPT")
    else
        DART_ARGS+=(--max_num_trunction "$MAX_KEPT")
    fi
    if [[ $METHOD != dart ]]; then DART_ARGS+=(--pruning_method "$METHOD"); fi
    # Families that budget by the ratio alone (Qwen2-VL / 2.5-VL, docs/DART.md): MAX_KEPT never changes their answers.
    if _budget_is_the_ratio "$CKPT"; then NAME=${NAME:-$MODEL_NAME-$METHOD-$RATIO}; fi
    NAME=${NAME:-$MODEL_NAME-$METHOD-$RATIO-$MAX_KEPT}
fi

IFS=',' read -ra GPUS <<< "${CUDA_VISIBLE_DEVICES:-}"
read -ra EXTRA_ARGS <<< "${EVAL_ARGS:-}"
WORKER_PIDS=()

_stop_workers() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
# Background workers do not get the terminal's Ctrl-C: pass it on (their answers so far are kept). A merge
# stopped half-way leaves no temporary file behind.
MERGE_TMP=""
trap '_stop_workers; if [[ -n $MERGE_TMP ]]; then rm -f "$MERGE_TMP"; fi; exit 130' INT TERM

# _wait_workers DIR N: wait for WORKER_PIDS; on the first failure stop the others, show the failed worker's
# log and exit with its status, so that a partial set of chunks is never merged.
_wait_workers() {
    local dir=$1 n=$2 left=$2 idx rc
    local -a finished=()
    while ((left > 0)); do
        for idx in "${!WORKER_PIDS[@]}"; do
            [[ -n ${finished[idx]:-} ]] && continue
            kill -0 "${WORKER_PIDS[idx]}" 2>/dev/null && continue
            rc=0
            wait "${WORKER_PIDS[idx]}" || rc=$?
            finished[idx]=1
            left=$((left - 1))
            if ((rc != 0)); then
                _stop_workers
                echo "error: worker $idx of $n (CUDA_VISIBLE_DEVICES=${GPUS[idx]}) failed with exit status $rc;" \
                    "the end of its log $dir/${n}_${idx}.log:" >&2
                tail -n 40 "$dir/${n}_${idx}.log" >&2
                # A worker refused to touch its file (other settings, or another run writing it): its own
                # message says what to do, and running the same command again would not help.
                if ! grep -qE "holds answers made with other settings|is being written by another run" \
                        "$dir/${n}_${idx}.log"; then
                    echo "(answers written so far are kept: run the same command again to resume)" >&2
                fi
                exit "$rc"
            fi
        done
        if ((left > 0)); then sleep 0.2; fi
    done
}

# _merge_chunks OUT CHUNK...: concatenate in chunk order (= the question file's order), and the chunks'
# errors sidecars (questions skipped for unreadable images) into OUT's.
_merge_chunks() {
    local out=$1 chunk errors=()
    shift
    MERGE_TMP="$out.tmp.$$"
    cat "$@" > "$MERGE_TMP"
    mv "$MERGE_TMP" "$out"
    MERGE_TMP=""
    for chunk in "$@"; do
        if [[ -f ${chunk%.jsonl}.errors.jsonl ]]; then errors+=("${chunk%.jsonl}.errors.jsonl"); fi
    done
    rm -f "${out%.jsonl}.errors.jsonl"
    if ((${#errors[@]} > 0)); then
        cat "${errors[@]}" > "${out%.jsonl}.errors.jsonl"
        echo "warning: $(wc -l < "${out%.jsonl}.errors.jsonl") questions skipped (unreadable images):" \
            "see ${out%.jsonl}.errors.jsonl" >&2
    fi
    echo "merged $# chunks into $out" >&2
}

# eval_answers MODULE ANSWERS_FILE [worker flags...]: answer a question file with one worker per GPU in
# CUDA_VISIBLE_DEVICES (else one worker), then merge. Workers resume existing answer files.
eval_answers() {
    local module=$1 answers=$2
    shift 2
    local args=(--model-path "$CKPT" --conv-mode "$CONV_MODE" --temperature 0 --batch-size "${BATCH_SIZE:-1}"
                "${DART_ARGS[@]}" "$@" "${EXTRA_ARGS[@]}")
    local n=${#GPUS[@]}
    mkdir -p "$(dirname "$answers")"
    if ((n <= 1)); then
        "$PY" -m "$module" "${args[@]}" --answers-file "$answers"
        return
    fi
    # Chunk files sit in a folder of their own, as llava.eval.chunking.chunk_answers_path lays them out.
    local dir=${answers%.jsonl}.chunks idx chunks=()
    mkdir -p "$dir"
    # Where the "GPUs" are really CPU cores (no CUDA), n workers share them; torchrun does the same.
    local cores
    cores=$(getconf _NPROCESSORS_ONLN)
    local threads=${OMP_NUM_THREADS:-$((cores / n > 0 ? cores / n : 1))}
    WORKER_PIDS=()
    for idx in $(seq 0 $((n - 1))); do
        chunks+=("$dir/${n}_${idx}.jsonl")
        local cmd=(env CUDA_VISIBLE_DEVICES="${GPUS[idx]}" OMP_NUM_THREADS="$threads"
                   "$PY" -m "$module" "${args[@]}" --answers-file "${chunks[idx]}" --num-chunks "$n" --chunk-idx "$idx")
        "${cmd[@]}" > "$dir/${n}_${idx}.log" 2>&1 &
        WORKER_PIDS+=($!)
        # Chunk 0 shows its progress bar here too. The worker writes its log itself (through a `tee`, a failure
        # could be reported before its last lines reached the log); `tail` follows it until the worker exits.
        if ((idx == 0)); then tail -n +1 -f --pid="$!" "$dir/${n}_${idx}.log" & fi
    done
    echo "$n workers (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES), logs in $dir/" >&2
    _wait_workers "$dir" "$n"
    _merge_chunks "$answers" "${chunks[@]}"
}
