"""`python -m llava.eval.eval_ocrbench`, the documented command: the code lives in `llava.eval.benchmarks.ocrbench.scorer`."""

import sys

from llava.eval.benchmarks.ocrbench.scorer import main

if __name__ == "__main__":
    sys.exit(main())
