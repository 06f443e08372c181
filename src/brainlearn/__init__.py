"""brainlearn: brain-inspired learning without backpropagation, each learner beside a backprop twin."""

__version__ = "0.1.0"
