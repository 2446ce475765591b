"""`python -m llava.eval.run_llava`, the documented command: the code lives in `llava.eval.cli.run_llava`."""

import sys

from llava.eval.cli.run_llava import main

if __name__ == "__main__":
    sys.exit(main())
