# shellcheck shell=bash
# What scripts/{v1_5,qwen2_vl,qwen2_5_vl}/lmms_eval.sh share: lmms-eval with our models (docs/LmmsEval.md).
# A model script sets MODEL (the lmms-eval model id) and DEFAULT_CKPT, then sources this with its arguments:
#
#     MODEL=qwen2_vl_dart DEFAULT_CKPT=Qwen/Qwen2-VL-7B-Instruct source .../lmms_eval_lib.sh "$@"
#
# Arguments: SPARSE (True / False, default True), RATIO (reduction_ratio, default 0.778), MAX_KEPT
# (max_num_trunction, default 128; the LLaVA-1.5 budget; Qwen ignores it, as the DART release does).
# The model_args are checked before lmms-eval starts (llava.lmms_plugin.preflight); the exit status is
# non-zero when lmms-eval reports an error during evaluation (lmms-eval itself exits 0 then).
# Environment (all optional):
#   CKPT        model path or hub id (default $DEFAULT_CKPT)
#   TASKS       lmms-eval tasks (default mme; the offline sample tasks pope_dart_sample,mme_dart_sample
#               when CKPT is the embedded default)
#   BATCH_SIZE  lmms-eval --batch_size (default 1; greedy answers are the same at any batch size)
#   LIMIT       lmms-eval --limit (testing only)
#   OUTPUT      output directory (default ./logs/lmms_eval)
#   CUDA_VISIBLE_DEVICES  GPUs: one process per visible GPU (accelerate launch); none: one process on the CPU
#   MODEL_ARGS  extra model_args, e.g. "pruning_method=random" or "max_pixels=12845056"
#   LMMS_ARGS   extra lmms-eval flags
#   PYTHON      interpreter (default .venv/bin/python, else python)

set -euo pipefail

SPARSE=${1:-True}
RATIO=${2:-0.778}
MAX_KEPT=${3:-128}

if [[ -n ${CKPT:-} && -e $CKPT && $CKPT != /* ]]; then CKPT=$PWD/$CKPT; fi
if [[ -n ${OUTPUT:-} && $OUTPUT != /* ]]; then OUTPUT=$PWD/$OUTPUT; fi
if [[ -n ${PYTHON:-} && $PYTHON == */* && $PYTHON != /* ]]; then PYTHON=$PWD/$PYTHON; fi
# The sample tasks read playground/ relative to the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON; elif [[ -x .venv/bin/python ]]; then PY=$PWD/.venv/bin/python; else PY=python; fi
if ! "$PY" -c "import lmms_eval, importlib.metadata as m; assert any(e.value.startswith('llava.lmms_plugin') for e in m.entry_points(group='lmms_eval.models'))" 2>/dev/null; then
    echo "error: lmms-eval or our plug-in is not installed for $PY: run 'bash scripts/setup_env.sh lmms-cpu' (CPU)" \
         "or 'pip install -e .[lmms]' (GPU); see docs/LmmsEval.md" >&2
    exit 2
fi

if [[ -z ${CKPT:-} ]]; then CKPT=$DEFAULT_CKPT; fi
if [[ $CKPT == checkpoints/llava-v1.5-tiny ]]; then TASKS=${TASKS:-pope_dart_sample,mme_dart_sample}; fi
TASKS=${TASKS:-mme}

gpus=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    if [[ -n ${CUDA_VISIBLE_DEVICES+x} ]]; then
        gpus=$(awk -F, '{print ($0 == "" ? 0 : NF)}' <<<"$CUDA_VISIBLE_DEVICES")
    else
        gpus=$(nvidia-smi -L | wc -l)
    fi
fi
device=cpu; if (( gpus > 0 )); then device=cuda; fi

model_args="pretrained=$CKPT,Sparse=$SPARSE,pruned_layer=2,image_token_start_index=0,image_token_length=0"
model_args+=",max_num_trunction=$MAX_KEPT,reduction_ratio=$RATIO,pivot_image_token=4,pivot_text_token=4"
if (( gpus <= 1 )); then model_args+=",device=$device"; fi
if [[ -n ${MODEL_ARGS:-} ]]; then model_args+=",$MODEL_ARGS"; fi

args=(-m lmms_eval --model "$MODEL" --model_args "$model_args" --tasks "$TASKS" --include_path llava/lmms_plugin/tasks
      --batch_size "${BATCH_SIZE:-1}" --log_samples --log_samples_suffix "$MODEL-sparse$SPARSE-$RATIO"
      --output_path "${OUTPUT:-./logs/lmms_eval}")
if [[ -n ${LIMIT:-} ]]; then args+=(--limit "$LIMIT"); fi
# shellcheck disable=SC2206  # LMMS_ARGS is a list of flags on purpose
if [[ -n ${LMMS_ARGS:-} ]]; then args+=($LMMS_ARGS); fi

# lmms-eval builds the model inside its error handler (a traceback, then exit 0): bad model_args are caught
# first, with our one-line message.
if ! "$PY" -m llava.lmms_plugin.preflight "$MODEL" "$model_args"; then exit 2; fi

echo "lmms-eval: $MODEL on $CKPT, tasks $TASKS, Sparse=$SPARSE ratio $RATIO, $( ((gpus > 1)) && echo "$gpus GPUs" || echo "$device")" >&2
launcher=("$PY")
if (( gpus > 1 )); then
    launcher+=(-m accelerate.commands.launch --multi_gpu --num_processes "$gpus" --num_machines 1
               --mixed_precision no --dynamo_backend no)
fi
# lmms-eval logs a failed evaluation as "Error during evaluation: ..." (on stdout) and still exits 0: its
# output is shown as it comes and read afterwards, so that the failure is this script's exit status.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
PYTHONUNBUFFERED=1 "${launcher[@]}" "${args[@]}" | tee "$log" || status=$?
if (( status != 0 )); then exit "$status"; fi
if grep -q "Error during evaluation" "$log"; then
    echo "error: lmms-eval reported an error during evaluation (its message is above); the results are incomplete" >&2
    exit 1
fi
