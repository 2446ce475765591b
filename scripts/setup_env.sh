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

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    pip_install "torch==${TORCH_VERSION:-2.13.0}"
fi
if [ -n "$extras" ]; then
    pip_install -e ".[${extras}]"
else
    pip_install -e .
fi
case ",$extras," in
    *,test,*|*,lmms-cpu,*)
        # The lmms extra's pin, read from pyproject.toml so that both installs test the same lmms-eval.
        lmms_eval=$("$venv/bin/python" -c 'import tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print(next(r for r in extras["lmms"] if r.startswith("lmms-eval")))')
        pip_install --no-deps "$lmms_eval"
        ;;
esac
