"""Equilibrium Propagation vs its backprop twin on real MNIST: 784-500-10 and 784-500-500-10.

    python benchmarks/eqprop_vs_bp.py --data-dir ../shared/data
    python benchmarks/eqprop_vs_bp.py --data-dir ../shared/data --full   # 60 epochs

Reports test errors, seconds per epoch, the cost of a free phase and the FLOP/s it reaches,
test error by number of free-phase steps, and the EP update against backprop through the
relaxation for a range of beta. Writes benchmarks/results/eqprop_vs_bp_mnist.{json,md} and figures.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "eqprop-vs-bp", "--dataset", "mnist", *sys.argv[1:]]))
