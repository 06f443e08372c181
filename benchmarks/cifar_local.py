"""CIFAR-10 with locally connected layers (Hinton 2022, sec. 4): recurrent FF vs BP with the same layers,
2 and 3 hidden layers of 32x32 maps with 3 units per pixel and 11x11 receptive fields, no weight sharing.

    python benchmarks/cifar_local.py --data-dir DIR     # DIR/cifar10/cifar-10-python.tar.gz, downloaded if missing

Writes benchmarks/results/local_vs_bp_cifar10.{json,md}: test errors, seconds per epoch, and the samples/s of
one locally connected layer against a dense layer with as many weights. Slow on a CPU: on this 2-core machine
one such layer trains on 587 images/s (forward and backward, one thread; a dense layer with as many weights:
12484; benchmarks/results/local_layer_speed_random.md, from benchmarks/local_speed.py), so a recurrent FF
epoch takes hours; `--epochs`, `--maps` and `--field` trade the paper's setting for time.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "local-vs-bp", "--dataset", "cifar10", *sys.argv[1:]]))
