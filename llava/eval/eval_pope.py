"""`python -m llava.eval.eval_pope`, the documented command: the code lives in `llava.eval.benchmarks.pope.scorer`."""

import sys

from llava.eval.benchmarks.pope.scorer import main

if __name__ == "__main__":
    sys.exit(main())
