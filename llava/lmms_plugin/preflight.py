"""Checks an lmms-eval command's model_args for one of our models before lmms-eval starts.

lmms-eval builds the model inside its own error handler, which prints a traceback, logs "Error during
evaluation" and exits 0 (unless --verbosity DEBUG). `scripts/lmms_eval_lib.sh` runs this first, so that a
mistyped or out-of-range argument stops the run with one line naming it, and a non-zero exit status:

    python -m llava.lmms_plugin.preflight llava_dart pretrained=checkpoints/llava-v1.5-tiny,Sparse=True

The checks are the model class's own (`check_model_args`), on the checkpoint's config; no weights load.
"""

from __future__ import annotations

import argparse
from typing import Any

from lmms_eval.utils import simple_parse_args_string

from llava.lmms_plugin.models import MODEL_CLASSES, ModelArgsError


def parse_model_args(arg_string: str) -> dict[str, Any]:
    """model_args as lmms-eval parses them (so "4" is 4, "True" is True and "-1" is -1.0, as the model gets them)."""
    try:
        return simple_parse_args_string(arg_string)
    except ValueError:  # an entry without "="
        raise ModelArgsError(f"model_args must be name=value pairs separated by commas, got {arg_string!r}") from None


def check(model_id: str, arg_string: str) -> None:
    """Raises ModelArgsError (or the loader's error for an unreadable checkpoint) for unusable model_args."""
    if model_id not in MODEL_CLASSES:
        raise ModelArgsError(f"--model {model_id} is not one of ours ({', '.join(MODEL_CLASSES)})")
    MODEL_CLASSES[model_id].check_model_args(parse_model_args(arg_string))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(MODEL_CLASSES), help="the lmms-eval model id")
    parser.add_argument("model_args", help="lmms-eval's --model_args string")
    args = parser.parse_args(argv)
    try:
        check(args.model, args.model_args)
    except (ValueError, OSError) as exc:  # ours, a config error or a checkpoint that is not there
        raise SystemExit(f"error: {exc}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
