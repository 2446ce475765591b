"""`python -m llava.eval.model_vqa_loader`, the documented command: the code lives in `llava.eval.workers.model_vqa_loader`."""

import sys

from llava.eval.workers.model_vqa_loader import main

if __name__ == "__main__":
    sys.exit(main())
