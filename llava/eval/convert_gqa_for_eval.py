"""`python -m llava.eval.convert_gqa_for_eval`, the documented command: the code lives in `llava.eval.benchmarks.gqa.convert`."""

import sys

from llava.eval.benchmarks.gqa.convert import main

if __name__ == "__main__":
    sys.exit(main())
