"""`python -m llava.eval.model_video_mme`, the documented command: the code lives in `llava.eval.benchmarks.videomme.worker`."""

import sys

from llava.eval.benchmarks.videomme.worker import main

if __name__ == "__main__":
    sys.exit(main())
