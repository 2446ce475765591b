"""`python -m llava.eval.model_vqa_science`, the documented command: the code lives in `llava.eval.benchmarks.scienceqa.worker`."""

import sys

from llava.eval.benchmarks.scienceqa.worker import main

if __name__ == "__main__":
    sys.exit(main())
