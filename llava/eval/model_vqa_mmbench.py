"""`python -m llava.eval.model_vqa_mmbench`, the documented command: the code lives in `llava.eval.benchmarks.mmbench.worker`."""

import sys

from llava.eval.benchmarks.mmbench.worker import main

if __name__ == "__main__":
    sys.exit(main())
