"""Forward-Forward and its backprop twin on real MNIST, trained on the same budget without and with jitter
(every training image shifted by up to 2 pixels each way, 25 positions, drawn anew each epoch).

    python benchmarks/ff_jitter.py --data-dir ../shared/data            # 784-1000-1000, 10 epochs, 1 seed
    python benchmarks/ff_jitter.py --data-dir ../shared/data --full     # 4x2000, 120 epochs

Writes benchmarks/results/ff_jitter_mnist.{json,md} and a figure of the four learning curves.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "ff-jitter", "--dataset", "mnist", "--seeds", "0", *sys.argv[1:]]))
