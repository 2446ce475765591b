"""`python -m llava.eval.calculate_mme`, the documented command: the code lives in `llava.eval.benchmarks.mme.scorer`."""

import sys

from llava.eval.benchmarks.mme.scorer import main

if __name__ == "__main__":
    sys.exit(main())
