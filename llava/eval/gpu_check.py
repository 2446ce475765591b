"""`python -m llava.eval.gpu_check`, the documented command: the code lives in `llava.eval.speed.gpu_check`."""

import sys

from llava.eval.speed.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
