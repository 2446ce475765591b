"""`python -m llava.eval.eval_video_mme`, the documented command: the code lives in `llava.eval.benchmarks.videomme.scorer`."""

import sys

from llava.eval.benchmarks.videomme.scorer import main

if __name__ == "__main__":
    sys.exit(main())
