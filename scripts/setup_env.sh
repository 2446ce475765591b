#!/usr/bin/env bash
# Creates .venv (once) and installs the package with the given extras, e.g. `scripts/setup_env.sh test`.
# With `test` or `lmms-cpu`, lmms-eval is installed without its declared dependencies (they include
# torchvision, which does not import beside the CPU torch); the lmms-cpu extra has what it imports.
# torch is installed first and pinned to 2.13.0 unless a torch is already there: letting pip resolve a bare
# `torch` would pull the newest multi-GB build. TORCH_BUILD picks a build of the PyTorch index instead, and
# replaces another build already in the venv: for a GPU, e.g.
#     TORCH_BUILD=cu128 bash scripts/setup_env.sh test
# (cu128 is CUDA 12.8: take the tag of a CUDA version your driver supports; PyTorch's install selector lists
# them), or TORCH_BUILD=cpu for the CPU build.
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
torch_version="${TORCH_VERSION:-2.13.0}"
installed_torch=$("$venv/bin/python" -c "import torch; print(torch.__version__)" 2>/dev/null || true)
if [ -n "${TORCH_BUILD:-}" ]; then
    # The local version (+cu128) makes pip replace a CPU build of the same release instead of keeping it.
    if [ "$installed_torch" != "$torch_version+$TORCH_BUILD" ]; then
        say "installing torch $torch_version+$TORCH_BUILD from the PyTorch index (a CUDA build is several GB)"
        pip_install "torch==$torch_version+$TORCH_BUILD" --index-url "https://download.pytorch.org/whl/$TORCH_BUILD"
    fi
elif [ -z "$installed_torch" ]; then
    say "installing torch $torch_version (about a minute)"
    pip_install "torch==$torch_version"
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
versions=$("$venv/bin/python" -c '
import torch, transformers
cuda = "available" if torch.cuda.is_available() else "not available"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, CUDA {cuda}")')
say "done: $venv ($versions)"
