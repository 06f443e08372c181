"""Data-parallel FF and BP with 1 and 2 processes, and the FF layer pipeline vs sequential training.

    python benchmarks/scaling.py --data-dir ../shared/data      # about 5 minutes on 2 cores

Writes benchmarks/results/scaling_mnist.{json,md}. Run it on an otherwise idle machine: it times.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "scaling", *sys.argv[1:]]))
