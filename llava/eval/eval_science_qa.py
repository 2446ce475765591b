"""`python -m llava.eval.eval_science_qa`, the documented command: the code lives in `llava.eval.benchmarks.scienceqa.scorer`."""

import sys

from llava.eval.benchmarks.scienceqa.scorer import main

if __name__ == "__main__":
    sys.exit(main())
