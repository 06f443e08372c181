"""Forward-Forward vs its backprop twin on real MNIST, in one run.

    python benchmarks/ff_vs_bp.py --data-dir ../shared/data          # default: 45 min on 2 cores (measured)
    python benchmarks/ff_vs_bp.py --data-dir ../shared/data --full   # Hinton: 4 x 2000, 60 epochs

Any `brainlearn bench ff-vs-bp` flag works here (--seeds, --epochs, --hidden, --lr, --negatives, ...).
Writes benchmarks/results/ff_vs_bp_mnist.{json,md} and figures.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "ff-vs-bp", "--dataset", "mnist", *sys.argv[1:]]))
