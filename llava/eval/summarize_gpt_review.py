"""`python -m llava.eval.summarize_gpt_review`, the documented command: the code lives in `llava.eval.benchmarks.llavabench.summarize`."""

import sys

from llava.eval.benchmarks.llavabench.summarize import main

if __name__ == "__main__":
    sys.exit(main())
