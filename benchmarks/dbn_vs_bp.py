"""Deep belief net (RBMs by wake and sleep, labels on top) vs its backprop twin on real MNIST.

    python benchmarks/dbn_vs_bp.py --data-dir ../shared/data          # default, 2 seeds: about 20 min a seed on 2 threads
    python benchmarks/dbn_vs_bp.py --data-dir ../shared/data --full   # 100 epochs

Reports test error of both, seconds per epoch, how often the twin reads a dream as the clamped
label, and the first RBM's test log-likelihood by AIS. Any `brainlearn bench dbn-vs-bp` flag
works here. Writes benchmarks/results/dbn_vs_bp_mnist.{json,md} and figures.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "dbn-vs-bp", "--dataset", "mnist", *sys.argv[1:]]))
