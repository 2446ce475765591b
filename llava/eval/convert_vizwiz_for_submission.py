"""`python -m llava.eval.convert_vizwiz_for_submission`, the documented command: the code lives in `llava.eval.benchmarks.vizwiz.convert`."""

import sys

from llava.eval.benchmarks.vizwiz.convert import main

if __name__ == "__main__":
    sys.exit(main())
