"""Traveling-wave RNN vs identity RNN: the adding task by length, the copy task, speed at T = 1000.

    python benchmarks/wave_rnn.py            # T = 100, 200, 400 for 1000 steps each: 30 min on one thread
    python benchmarks/wave_rnn.py --full     # the paper's T up to 1000 and 60000 steps (about 54 h per wRNN run on one thread)

Writes benchmarks/results/wave_vs_irnn_sequences.{json,md} and figures (`--full`: wave_vs_irnn_sequences-full.*).
"""

import sys

from brainlearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "wave-rnn", *sys.argv[1:]]))
