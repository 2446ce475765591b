"""`python -m llava.eval.model_vqa_qbench`, the documented command: the code lives in `llava.eval.benchmarks.qbench.worker`."""

import sys

from llava.eval.benchmarks.qbench.worker import main

if __name__ == "__main__":
    sys.exit(main())
