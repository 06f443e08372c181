"""The experiments: each module reproduces a paper's table or claim beside the backprop twin, and ends with the
`Experiment` that describes it (see `common.Experiment`). In order:

    docstring      the paper's table or claim, and the commands that run it
    PRESETS        the budget per data set (digits / mnist / the paper's, `--full`)
    add_arguments  its flags, on its own `brainlearn bench NAME` subcommand
    run_from_args  checks the flags (a usage error is one line) and calls run
    run            trains, measures and writes RESULT_<dataset>.json and .md (and figures)
    markdown       the table under the provenance header
    figures        what the JSON can redraw (`brainlearn report` does)
    CLAIMS         the published claims its result checks, with the rule that says "reproduced"

A new experiment is one new module and one line below.
"""

from . import (dbn_vs_bp, dendritic_vs_bp, eqprop_vs_bp, ff_ablation, ff_jitter, ff_sequence, ff_vs_bp, local_speed, local_vs_bp, mortal,
               rbm_ais, rff_vs_bp, scaling, wave_vs_irnn)
from .common import Claim, Experiment

EXPERIMENTS: dict[str, Experiment] = {module.EXPERIMENT.name: module.EXPERIMENT for module in (
    ff_vs_bp, ff_ablation, ff_jitter, ff_sequence, rff_vs_bp, local_vs_bp, dbn_vs_bp, rbm_ais, eqprop_vs_bp, dendritic_vs_bp, wave_vs_irnn,
    mortal, scaling, local_speed)}

BY_RESULT: dict[str, Experiment] = {experiment.result: experiment for experiment in EXPERIMENTS.values()}
CLAIMS: list[Claim] = [claim for experiment in EXPERIMENTS.values() for claim in experiment.claims]
ALL_CODE = tuple(dict.fromkeys(module for experiment in EXPERIMENTS.values() for module in experiment.code))
