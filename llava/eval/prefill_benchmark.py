"""`python -m llava.eval.prefill_benchmark`, the documented command: the code lives in `llava.eval.speed.prefill_benchmark`."""

import sys

from llava.eval.speed.prefill_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
