"""Every algorithm, by the name the CLI and checkpoints use."""

from .backprop import Backprop, BackpropConfig
from .base import Learner
from .boltzmann import DeepBeliefNet, DeepBeliefNetConfig
from .dendritic import DendriticConfig, DendriticMicrocircuit
from .eqprop import EquilibriumProp, EquilibriumPropConfig
from .forward_forward import ForwardForward, ForwardForwardConfig
from .rbm import RBMConfig, RestrictedBoltzmannMachine
from .recurrent_ff import RecurrentFF, RecurrentFFConfig

ALGORITHMS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (ForwardForward, RecurrentFF, Backprop, DeepBeliefNet, RestrictedBoltzmannMachine,
                                EquilibriumProp, DendriticMicrocircuit)}

__all__ = ["ALGORITHMS", "Backprop", "BackpropConfig", "DeepBeliefNet", "DeepBeliefNetConfig", "DendriticConfig", "DendriticMicrocircuit",
           "EquilibriumProp", "EquilibriumPropConfig", "ForwardForward", "ForwardForwardConfig", "Learner",
           "RBMConfig", "RecurrentFF", "RecurrentFFConfig", "RestrictedBoltzmannMachine"]
