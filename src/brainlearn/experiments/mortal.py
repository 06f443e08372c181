"""Mortal-hardware benchmark: FF vs BP on the same net under each hardware fault, and knowledge
passed by distillation (activity) instead of weights.

    brainlearn bench mortal --data-dir DIR       # MNIST, about 30 minutes on 2 cores

Every fault run trains FF and BP from the same initial weights for the same epochs on the same
data, with the fault in place during training and test (see `hardware`). Backprop through the
black box is refused; BP's two honest substitutes are reported under their own names.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from .. import distillation, hardware, plots, train
from ..algorithms import BackpropConfig, ForwardForwardConfig, backprop, forward_forward
from ..arguments import add_data_arguments, add_output_arguments
from ..data import Dataset, load_dataset
from ..distillation import distill, from_labels, error_rates, two_shards
from ..hardware import BlackBox, Drift, Fault, Noise, Quantize, make_mortal
from ..train import TrainConfig, fit, make_learner
from .common import Claim, Experiment, environment, percent

# (fault family, level, the fault). Levels: noise as a fraction of each tensor's RMS (additive) or of
# each value (multiplicative); drift per step as a fraction of the initial weight RMS; bits.
FAULTS = [("none", "-", lambda: Fault())]
FAULTS += [("additive noise", level, lambda level=level: Noise(level, "additive")) for level in (0.1, 0.3, 1.0)]
FAULTS += [("multiplicative noise", level, lambda level=level: Noise(level, "multiplicative")) for level in (0.3, 1.0)]
FAULTS += [("drift", rate, lambda rate=rate: Drift(rate)) for rate in (1e-4, 1e-3, 1e-2)]
FAULTS += [("low precision (bits)", bits, lambda bits=bits: Quantize(bits)) for bits in (2, 4, 8, 16)]
BOX_LEARNERS = [("ff", "ff", "refuse"), ("bp-above-box", "bp", "above"),
                ("bp-straight-through", "bp", "straight-through")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500],
                        help="hidden layers of FF and BP (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--labelled", type=int, default=1000,
                        help="labels the distillation student has (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=5000,
                        help="images in each of the two co-distillation shards (default: %(default)s)")
    add_output_arguments(parser, "do not print each fault's errors")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    if len(args.hidden) < 2 or min(args.hidden) < 1 or args.epochs < 1:
        parser.error("need two or more positive --hidden sizes (the black box sits before layer 2) and --epochs >= 1")
    if not 1 <= args.labelled <= len(data.x_train) or not 1 <= 2 * args.shard_size <= len(data.x_train):
        parser.error(f"--labelled and 2 x --shard-size must be within the {len(data.x_train)} training images")
    config = TrainConfig(epochs=args.epochs, seed=args.seed, eval_every=0)
    return run(data, tuple(args.hidden), config, args.labelled, args.shard_size, args.out_dir, command,
               progress=not args.quiet)


def fault_run(algorithm: str, hidden: tuple[int, ...], data: Dataset, config: TrainConfig, fault: Fault,
              box_mode: str | None = None) -> dict:
    learner_config = (ForwardForwardConfig(hidden=hidden) if algorithm == "ff" else BackpropConfig(hidden=hidden))
    learner = make_learner(algorithm, data.n_features, data.n_classes, learner_config, config.seed)
    box = BlackBox(hidden[0], seed=config.seed, mode=box_mode) if box_mode else None
    start = time.perf_counter()
    history = fit(make_mortal(learner, fault, box), data, config, progress=False)
    errors = {k: v for k, v in history[-1].items() if k.startswith("error")}
    # FF's primary figure is its goodness readout (the softmax reads the same faulty layers)
    return {"error": errors.get("error_goodness", errors.get("error")), "errors": errors,
            "seconds": time.perf_counter() - start}


def run(data: Dataset, hidden: tuple[int, ...], config: TrainConfig, labelled: int,
                     shard_size: int, out_dir: Path, command: str, progress: bool = True) -> dict:
    started = environment()
    out_dir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    faults = []
    for family, level, make in FAULTS:
        row = {"fault": family, "level": level, "description": make().describe()}
        for algorithm in ("ff", "bp"):
            row[algorithm] = fault_run(algorithm, hidden, data, config, make())
        say(f"{row['description']}: FF {percent(row['ff']['error'])}, BP {percent(row['bp']['error'])}")
        faults.append(row)
    box = {"fault": "black box", "level": "-", "description": "black box before hidden layer 2"}
    for name, algorithm, mode in BOX_LEARNERS:
        box[name] = fault_run(algorithm, hidden, data, config, Fault(), mode)
        say(f"black box: {name} {percent(box[name]['error'])}")

    distilled = distillation_runs(data, config, labelled, shard_size)
    say(f"distillation: {distilled}")
    fields = {"hidden": list(hidden), "faults": faults, "black_box": box, "distillation": distilled}
    return EXPERIMENT.write(data.name, command, started, [config.seed], asdict(config), fields, out_dir)


def distillation_runs(data: Dataset, config: TrainConfig, labelled: int, shard_size: int) -> dict:
    """Teacher -> student of another architecture; two nets on two shards: alone, co-distilled, averaged."""
    teacher = make_learner("bp", data.n_features, data.n_classes, BackpropConfig(hidden=(1000, 1000)), config.seed)
    fit(teacher, data, config, progress=False)
    student_hidden = (300,)
    few = TrainConfig(epochs=max(1, config.epochs * len(data.x_train) // labelled), batch_size=config.batch_size,
                      seed=config.seed)  # as many steps as the distilled student gets
    x_test, y_test = data.x_test, data.y_test
    out = {"teacher_hidden": [1000, 1000], "student_hidden": list(student_hidden), "labelled": labelled,
           "teacher": error_rates([teacher], x_test, y_test)["net0"],
           "student_from_labels": error_rates([from_labels(data.x_train[:labelled], data.y_train[:labelled],
                                                           student_hidden, few)], x_test, y_test)["net0"],
           "student_distilled": error_rates([distill(teacher, data.x_train, student_hidden, config)],
                                            x_test, y_test)["net0"],
           "shard_size": shard_size}
    shards = TrainConfig(epochs=max(1, config.epochs * len(data.x_train) // (2 * shard_size)),
                         batch_size=config.batch_size, seed=config.seed)
    x, y = data.x_train[:2 * shard_size], data.y_train[:2 * shard_size]
    out["shards"] = {mode: error_rates(list(two_shards(x, y, student_hidden, shards, mode)), x_test, y_test)
                     for mode in ("alone", "codistill", "average")}
    return out


def markdown(result: dict) -> str:
    hidden = "-".join(map(str, result["hidden"]))
    lines = [f"Net: {hidden} hidden, the same for FF and BP. Test error (FF: goodness readout) with the fault "
             "in place during training and test.", "",
             "| fault | level | FF | BP | BP / FF |", "| --- | --- | --- | --- | --- |"]
    for row in result["faults"]:
        ff, bp = row["ff"]["error"], row["bp"]["error"]
        lines.append(f"| {row['fault']} | {row['level']} | {percent(ff)} | {percent(bp)} | "
                     f"{bp / ff:.2f} |")
    box = result["black_box"]
    lines += ["", "Black box (a fixed random tanh layer) before hidden layer 2; backprop through it is refused:", "",
              "| learner | test error |", "| --- | --- |"]
    lines += [f"| {name} | {percent(box[name]['error'])} |" for name, _, _ in BOX_LEARNERS]
    d = result["distillation"]
    student = "-".join(map(str, d["student_hidden"]))
    lines += ["", f"Distillation: teacher {'-'.join(map(str, d['teacher_hidden']))} (BP, all labels) "
              f"{percent(d['teacher'])}; student {student} from its {d['labelled']} labels alone "
              f"{percent(d['student_from_labels'])}; the same student from the teacher's soft targets on the "
              f"training images (no labels) {percent(d['student_distilled'])}.", "",
              f"Two {student} nets on two shards of {d['shard_size']} images:", "",
              "| sharing | net 0 | net 1 | ensemble |", "| --- | --- | --- | --- |"]
    names = {"alone": "nothing", "codistill": "predictions (co-distillation)", "average": "weights (averaged)"}
    for mode, errors in d["shards"].items():
        lines.append(f"| {names[mode]} | {percent(errors['net0'])} | {percent(errors['net1'])} | "
                     f"{percent(errors['ensemble'])} |")
    return "\n".join(lines) + "\n"


def figures(result: dict, out_dir: Path) -> list[tuple[Path, str]]:
    families = {}
    for row in result["faults"][1:]:
        families.setdefault(row["fault"], []).append(row)
    panels = {family: {"levels": [row["level"] for row in rows], "FF": [row["ff"]["error"] for row in rows],
                       "BP": [row["bp"]["error"] for row in rows]} for family, rows in families.items()}
    fault_free = {"FF": result["faults"][0]["ff"]["error"], "BP": result["faults"][0]["bp"]["error"]}
    return [(plots.fault_curves(panels, fault_free, out_dir / f"mortal_{result['dataset']}.png",
                                f"{result['dataset']}: test error under each fault (dashed: none)"),
             "FF vs BP on faulty hardware: test error against the fault's level")]


def fault(result: dict, family: str, level) -> dict:
    return next(row for row in result["faults"] if row["fault"] == family and row["level"] == level)


def analog(result: dict) -> list[dict]:
    return [row for row in result["faults"] if row["fault"].endswith("noise") or row["fault"] == "drift"]


def degradation(result: dict, row: dict, learner: str) -> float:
    """How many times the fault-free error the faulty net's error is."""
    return row[learner]["error"] / result["faults"][0][learner]["error"]


def mean_net(result: dict, mode: str) -> float:
    errors = result["distillation"]["shards"][mode]
    return (errors["net0"] + errors["net1"]) / 2


def eight_bits_cost(result: dict, name: str) -> bool:
    """Whether 8 bits cost `name` more than 0.3 points of test error."""
    return fault(result, "low precision (bits)", 8)[name]["error"] > result["faults"][0][name]["error"] + 0.003


MNIST_COMMAND = "python benchmarks/mortal.py --dataset mnist --data-dir DIR"

CLAIMS = (
    Claim("Mortal hardware", "8 bits are enough for brain-like networks", "8-bit weights and activities",
          "Hinton 2022, sec. 8", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: "; ".join(f"{name.upper()} {percent(fault(r, 'low precision (bits)', 8)[name]['error'])} "
                                   f"at 8 bits vs {percent(r['faults'][0][name]['error'])} exact" for name in ("ff", "bp")),
          differs=lambda r: None if not any(eight_bits_cost(r, name) for name in ("ff", "bp")) else (
              "8 bits cost more than 0.3 points for " + ", ".join(
                  f"{name.upper()} (16 bits: {percent(fault(r, 'low precision (bits)', 16)[name]['error'])}; one seed)"
                  for name in ("ff", "bp") if eight_bits_cost(r, name))),
          reproduced_when="8-bit error within 0.3 points of the exact net's, for FF and BP"),
    Claim("Mortal hardware", "FF learns through a black-box layer where backprop cannot", "qualitative",
          "Hinton 2022, sec. 8", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: (f"FF {percent(r['black_box']['ff']['error'])} with the box "
                          f"({percent(r['faults'][0]['ff']['error'])} without); BP is refused; its substitutes: "
                          f"above the box {percent(r['black_box']['bp-above-box']['error'])}, straight-through "
                          f"{percent(r['black_box']['bp-straight-through']['error'])}"),
          differs=lambda r: None if r["black_box"]["ff"]["error"] < min(
              r["black_box"][name]["error"] for name in ("bp-above-box", "bp-straight-through")) else (
              "a BP substitute beats FF here: with one box, training only the layers above it is enough on MNIST"),
          reproduced_when="FF with the box beats both labelled BP substitutes"),
    Claim("Mortal hardware", "FF degrades more gracefully than backprop on noisy, drifting analog hardware",
          "qualitative", "Hinton 2022, sec. 8", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: "; ".join(f"{row['description']}: FF x{degradation(r, row, 'ff'):.2f}, "
                                   f"BP x{degradation(r, row, 'bp'):.2f}" for row in analog(r)),
          differs=lambda r: None if all(degradation(r, row, "ff") <= degradation(r, row, "bp")
                                        for row in analog(r)) else "BP's error grows less at some levels",
          reproduced_when="at every noise and drift level, FF's error grows by no larger a factor than BP's"),
    Claim("Mortal hardware", "A teacher's knowledge reaches a student of another architecture through its "
          "predictions", "MNIST student 146 -> 74 errors (Hinton, Vinyals & Dean 2015)",
          "Hinton, Vinyals & Dean 2015", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: (f"student {'-'.join(map(str, r['distillation']['student_hidden']))}: "
                          f"{percent(r['distillation']['student_from_labels'])} from "
                          f"{r['distillation']['labelled']} labels, {percent(r['distillation']['student_distilled'])} "
                          f"distilled; teacher {percent(r['distillation']['teacher'])}"),
          differs=lambda r: None if r["distillation"]["student_distilled"] < r["distillation"][
              "student_from_labels"] else "the distilled student is not better",
          reproduced_when="the distilled student beats the same student trained on its labels"),
    Claim("Mortal hardware", "Sharing predictions (co-distillation) passes knowledge between nets trained on "
          "different data", "qualitative", "Anil et al. 2018; Hinton 2022, sec. 8", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: "; ".join(f"{label}: {percent(mean_net(r, mode))}" for mode, label in (
              ("alone", "alone"), ("codistill", "sharing predictions"), ("average", "sharing weights (averaged)"))),
          differs=lambda r: None if mean_net(r, "codistill") < mean_net(r, "alone") else (
              "co-distilled nets are no better than nets alone"),
          reproduced_when="co-distilled nets beat nets trained alone on their shard (mean of the two)"),
)

EXPERIMENT = Experiment(
    name="mortal", result="mortal",
    help="FF vs BP on faulty hardware (black box, noise, drift, few bits); distillation", description=__doc__,
    code=(forward_forward, backprop, train, hardware, distillation), add_arguments=add_arguments,
    run_from_args=run_from_args, markdown=markdown, figures=figures,
    readme_figure=("mortal_mnist", "mortal_mnist.png", "FF vs BP on faulty hardware: test error against each fault's level"),
    claims=CLAIMS)
