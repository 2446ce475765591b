"""`python -m llava.eval.sweep`: accuracy against kept image tokens (see the package's docstring)."""

import sys

from llava.eval.sweep import main

if __name__ == "__main__":
    sys.exit(main())
