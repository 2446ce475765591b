"""`python -m llava.eval.model_vqa_ocrbench`, the documented command: the code lives in `llava.eval.benchmarks.ocrbench.worker`."""

import sys

from llava.eval.benchmarks.ocrbench.worker import main

if __name__ == "__main__":
    sys.exit(main())
