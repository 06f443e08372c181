"""FF vs BP on "mortal" hardware (black box, analog noise, drift, low precision), and distillation.

    python benchmarks/mortal.py --dataset mnist --data-dir ../shared/data

Writes benchmarks/results/mortal_mnist.{json,md,png}.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "mortal", *sys.argv[1:]]))
