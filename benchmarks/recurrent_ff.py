"""Recurrent (GLOM-like) Forward-Forward, with high and with low goodness for positive data, vs its backprop
twin on real MNIST.

    python benchmarks/recurrent_ff.py --data-dir ../shared/data            # 784-500-500, 10 epochs, 1 seed
    python benchmarks/recurrent_ff.py --data-dir ../shared/data --full     # Hinton's 3x2000, 60 epochs

Reports the test error of each objective (goodness summed over steps 3-5 for each candidate label, and a
softmax readout), the BP twin's, seconds per epoch, and each layer's goodness per step for the right label
vs the wrong ones. Writes benchmarks/results/rff_vs_bp_mnist.{json,md} and figures.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "rff-vs-bp", "--dataset", "mnist", "--seeds", "0", *sys.argv[1:]]))
