"""`python -m llava.eval.eval_textvqa`, the documented command: the code lives in `llava.eval.benchmarks.textvqa.scorer`."""

import sys

from llava.eval.benchmarks.textvqa.scorer import main

if __name__ == "__main__":
    sys.exit(main())
