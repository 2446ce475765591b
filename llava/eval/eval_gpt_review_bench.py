"""`python -m llava.eval.eval_gpt_review_bench`, the documented command: the code lives in `llava.eval.benchmarks.llavabench.scorer`."""

import sys

from llava.eval.benchmarks.llavabench.scorer import main

if __name__ == "__main__":
    sys.exit(main())
