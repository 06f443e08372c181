"""Every algorithm, by the name the CLI and checkpoints use."""

from .backprop import Backprop, BackpropConfig
from .base import Learner
from .forward_forward import ForwardForward, ForwardForwardConfig

ALGORITHMS: dict[str, type[Learner]] = {cls.name: cls for cls in (ForwardForward, Backprop)}

__all__ = ["ALGORITHMS", "Backprop", "BackpropConfig", "ForwardForward", "ForwardForwardConfig", "Learner"]
