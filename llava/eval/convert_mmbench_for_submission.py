"""`python -m llava.eval.convert_mmbench_for_submission`, the documented command: the code lives in `llava.eval.benchmarks.mmbench.convert`."""

import sys

from llava.eval.benchmarks.mmbench.convert import main

if __name__ == "__main__":
    sys.exit(main())
