"""`python -m llava.eval.convert_answer_to_mme`, the documented command: the code lives in `llava.eval.benchmarks.mme.convert`."""

import sys

from llava.eval.benchmarks.mme.convert import main

if __name__ == "__main__":
    sys.exit(main())
