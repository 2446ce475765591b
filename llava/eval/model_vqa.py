"""`python -m llava.eval.model_vqa`, the documented command: the code lives in `llava.eval.workers.model_vqa`."""

import sys

from llava.eval.workers.model_vqa import main

if __name__ == "__main__":
    sys.exit(main())
