"""What the family registry says about a checkpoint, for shell scripts (scripts/eval_lib.sh).

    python -m llava.model.families CKPT                       # JSON: family, model_type, prompt format, budget rule
    python -m llava.model.families CKPT --get ratio_budget    # one field: true / false, a name, ...
    python -m llava.model.families --list                     # the registered families and their model types
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from llava.model.families import families, family_for


def describe(family, config) -> dict:
    """What the scripts ask; `config` None when the family was known by its hub id alone."""
    return {"family": family.name, "model_type": getattr(config, "model_type", None),
            "prompt_format": family.prompt_format, "ratio_budget": family.ratio_budget,
            "before_llm_methods": family.before_llm_methods,
            "lmms_model": family.lmms_model(config) if config is not None else None}


def family_by_hub_id(checkpoint: str):
    """The family whose releases' hub ids look like `checkpoint` (not a local path), or None."""
    if os.path.exists(checkpoint) or checkpoint.startswith(("/", ".", "~")):
        return None
    for family in families():
        if family.hub_name_pattern and re.search(family.hub_name_pattern, checkpoint.lower()):
            return family
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a local checkpoint folder or a hub id")
    parser.add_argument("--get", help="print this field only")
    parser.add_argument("--list", action="store_true", help="list the registered families")
    args = parser.parse_args(argv)
    if args.list:
        for family in families():
            print(f"{family.name}: {', '.join(family.model_types) or '(any other model_type)'}")
        return 0
    if args.checkpoint is None:
        parser.error("give a checkpoint, or --list")
    from llava.model.builder import read_config

    try:
        config = read_config(args.checkpoint)
        info = describe(family_for(config), config)
    except (OSError, ValueError) as exc:
        family = family_by_hub_id(args.checkpoint)
        if family is None:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        info = describe(family, None)
    if args.get is None:
        print(json.dumps(info))
    elif args.get not in info:
        parser.error(f"--get takes one of {', '.join(info)}")
    else:
        print(json.dumps(info[args.get]) if not isinstance(info[args.get], str) else info[args.get])
    return 0


if __name__ == "__main__":
    sys.exit(main())
