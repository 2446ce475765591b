"""`python -m llava.eval.convert_seed_for_submission`, the documented command: the code lives in `llava.eval.benchmarks.seed.convert`."""

import sys

from llava.eval.benchmarks.seed.convert import main

if __name__ == "__main__":
    sys.exit(main())
