"""`python -m llava.eval.eval_gqa`, the documented command: the code lives in `llava.eval.benchmarks.gqa.scorer`."""

import sys

from llava.eval.benchmarks.gqa.scorer import main

if __name__ == "__main__":
    sys.exit(main())
