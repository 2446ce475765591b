"""`python -m llava.eval.throughput_benchmark`, the documented command: the code lives in `llava.eval.speed.throughput_benchmark`."""

import sys

from llava.eval.speed.throughput_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
