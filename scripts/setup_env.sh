#!/usr/bin/env bash
# Creates .venv (once) and installs the package with the given extras, e.g. `scripts/setup_env.sh test`.
# With `test` or `lmms-cpu`, lmms-eval is installed without its declared dependencies (they include
# torchvision, which does not import beside the CPU torch); the lmms-cpu extra has what it imports.
# torch is installed first and pinned to the CPU build 2.13.0 unless a torch is already there (e.g. a CUDA
# build you installed yourself): letting pip resolve a bare `torch` would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${LLAVA_VENV:-.venv}"
python="${PYTHON:-python3}"

say() { echo "setup: $*" >&2; }
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$python" -m venv "$venv"
fi
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    say "installing torch ${TORCH_VERSION:-2.13.0} (CPU build; about a minute)"
    pip_install "torch==${TORCH_VERSION:-2.13.0}"
fi
say "installing llava-dart${extras:+ with extras [$extras]} into $venv"
if [ -n "$extras" ]; then
    pip_install -e ".[${extras}]"
else
    pip_install -e .
fi
case ",$extras," in
    *,test,*|*,lmms-cpu,*)
        # The lmms extra's pin, read from pyproject.toml so that both installs test the same lmms-eval.
        lmms_eval=$("$venv/bin/python" -c 'import tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print(next(r for r in extras["lmms"] if r.startswith("lmms-eval")))')
        say "installing $lmms_eval without its declared dependencies (see docs/LmmsEval.md)"
        log=$(mktemp)
        if ! pip_install --no-deps "$lmms_eval" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; exit 1; fi
        # pip lists lmms-eval's other declared requirements as conflicts: expected, they are not needed here.
        grep -v "^lmms-eval .* requires \|dependency resolver\|dependency conflicts" "$log" >&2 || true
        rm -f "$log"
        ;;
esac
say "done: $venv ($("$venv/bin/python" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")'))"
