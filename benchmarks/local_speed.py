"""Speed of a locally connected layer (11x11 receptive fields, no weight sharing) against a dense layer with as
many weights, at MNIST and CIFAR-10 sizes: training samples/s, forward and backward, on random inputs.

    OMP_NUM_THREADS=1 python benchmarks/local_speed.py     # a few seconds

Writes benchmarks/results/local_layer_speed_random.{json,md}. Any `brainlearn bench local-speed` flag works here.
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "local-speed", *sys.argv[1:]]))
