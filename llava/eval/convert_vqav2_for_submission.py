"""`python -m llava.eval.convert_vqav2_for_submission`, the documented command: the code lives in `llava.eval.benchmarks.vqav2.convert`."""

import sys

from llava.eval.benchmarks.vqav2.convert import main

if __name__ == "__main__":
    sys.exit(main())
