"""`python -m llava.eval.eval_qbench`, the documented command: the code lives in `llava.eval.benchmarks.qbench.scorer`."""

import sys

from llava.eval.benchmarks.qbench.scorer import main

if __name__ == "__main__":
    sys.exit(main())
