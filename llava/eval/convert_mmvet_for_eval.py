"""`python -m llava.eval.convert_mmvet_for_eval`, the documented command: the code lives in `llava.eval.benchmarks.mmvet.convert`."""

import sys

from llava.eval.benchmarks.mmvet.convert import main

if __name__ == "__main__":
    sys.exit(main())
