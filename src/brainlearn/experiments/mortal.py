"""Mortal-hardware benchmark: FF vs backprop on the same net under each hardware fault, backprop given
only what hardware allows, and knowledge passed by distillation (activity) instead of weights.

    brainlearn bench mortal --dataset mnist --data-dir DIR              # 3 seeds, 784-500-500, 3 epochs
    brainlearn bench mortal --dataset mnist --data-dir DIR --seeds 1 --out-dir part1   # one seed ...
    brainlearn bench mortal --merge part0/mortal_mnist.json part1/mortal_mnist.json ...  # ... and merged
    brainlearn bench mortal --dataset mnist --data-dir DIR --full  # 15 epochs, where the fault-free nets converge

It tests the seed's two claims (Hinton 2022, sec. 8; the talk):
(a) "if you have a layer in the middle of a backprop network ... where you don't know what the transformation
    is, and maybe the transformation is not even stationary, the backprop algorithm doesn't work. The best you
    can do is try and build yourself a differentiable model of that black box": a black box before hidden
    layer 2, fixed or drifting, against FF and backprop's honest substitutes, including a surrogate model of it;
(b) "doing the contrast between positive data and negative data allows you to cancel all these things out ...
    because they're the same in ... both forward passes": each noise independent between FF's two passes and
    shared by them, per-unit mismatch (shared) and drift (slow, shared), against backprop as hardware allows
    it ("model": physics-aware training; "in-situ": its backward pass on the same faulty device) and the
    "oracle" that knows every noise sample (no hardware could give it that; labelled).

Every run trains from the same initial weights for the same epochs on the same data, with the fault in place
during training and test (see `hardware`), and is tested after every epoch (the curves). Seeds draw the
weights, the data order and the faults. Each fault row is written as soon as it is done, so a cut-off run
keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

from .. import cuda_graphs, distillation, hardware, plots, train
from ..algorithms import BackpropConfig, ForwardForwardConfig, backprop, forward_forward
from ..arguments import add_data_arguments, add_device_argument, add_output_arguments, device_or_usage_error
from ..data import Dataset
from ..distillation import distill, error_rates, from_labels, two_shards
from ..hardware import BlackBox, Drift, Fault, Mismatch, Noise, Quantize, make_mortal
from ..train import DivergedError, TrainConfig, fit, make_learner
from .common import Claim, Experiment, environment, experiment_data, net_label, percent, ran_on

# (fault family, level, sharing between FF's positive and negative pass, the fault for (seed, minibatch size)).
# Levels: noise as a fraction of each tensor's RMS (additive) or of each value (multiplicative); mismatch
# likewise per unit; drift per step as a fraction of the initial weight RMS; bits.
FAULTS = [("none", "-", "-", lambda seed, batch: Fault())]
for _kind, _level in (("additive", 0.3), ("additive", 1.0), ("multiplicative", 0.3)):
    FAULTS += [(f"{_kind} noise", _level, "independent", lambda seed, batch, k=_kind, v=_level: Noise(v, k, seed)),
               (f"{_kind} noise", _level, "shared", lambda seed, batch, k=_kind, v=_level: Noise(v, k, seed, batch))]
FAULTS += [("mismatch", 0.5, "shared", lambda seed, batch: Mismatch(0.5, seed)),
           ("drift", 0.01, "shared", lambda seed, batch: Drift(0.01, seed)),
           ("low precision (bits)", 8, "-", lambda seed, batch: Quantize(8)),
           ("low precision (bits)", 4, "-", lambda seed, batch: Quantize(4))]
# learner -> (algorithm, how its gradient passes a faulty layer)
FAULT_LEARNERS = {"ff": ("ff", "model"), "bp-oracle": ("bp", "oracle"), "bp-model": ("bp", "model"),
                  "bp-in-situ": ("bp", "in-situ")}
BP_AS_HARDWARE_ALLOWS = ("bp-model", "bp-in-situ")
# Learners for which noise shared by FF's two passes is the same as independent noise: one forward pass per step,
# and no draw read in their backward pass. A shared-noise row takes their runs from its independent row, when that
# ran in the same call, instead of training them again (in mortal_mnist-full.json, where both were trained, they
# were equal curve for curve on every seed: with full minibatches the draws are the same, in the same order).
SHARING_BLIND = ("bp-oracle", "bp-model")
BOXES = (("fixed", 0.0), ("drifting", 0.01))  # (name, random-walk step of R per training step, of its RMS)
BOX_LEARNERS = {"ff": ("ff", "refuse"), "bp-above-box": ("bp", "above"),
                "bp-straight-through": ("bp", "straight-through"), "bp-surrogate": ("bp", "surrogate")}
BP_BOX_SUBSTITUTES = ("bp-above-box", "bp-straight-through", "bp-surrogate")

def row_name(spec: tuple) -> str:
    """The --rows name of a FAULTS or BOXES entry: "additive-noise-0.3", "shared-additive-noise-0.3", "fixed-box"."""
    if len(spec) == 2:
        return f"{spec[0]}-box"
    return spec[3](0, 1).describe().replace("/step", "").replace(" ", "-")


ROWS = [row_name(spec) for spec in FAULTS[:1] + list(BOXES) + FAULTS[1:]]  # in the order they run


# The budget of --full: where the fault-free nets of 784-500-500 stop improving at the constant learning rate
# (seed 0, one run each, test error per epoch: FF's softmax readout 3.44% after 3 epochs, 2.77% after 7, then between
# 2.66% and 3.35% up to 25; BP 2.38% after 3, 1.80% after 12, then between 1.62% and 2.10%;
# benchmarks/results/logs/mortal_convergence_probe.log). Each --full result says whether its nets converged.
DEFAULT_EPOCHS, FULL_EPOCHS = 3, 15
DEFAULT_HIDDEN = (500, 500)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(DEFAULT_HIDDEN),
                        help="hidden layers of FF and BP (default: %(default)s); another net writes "
                             "mortal_<dataset>-<hidden sizes>.* (mortal_mnist-full-1000-1000.json), beside the "
                             "default net's files")
    parser.add_argument("--epochs", type=int, help=f"epochs per run (default: {DEFAULT_EPOCHS}; --full: {FULL_EPOCHS})")
    parser.add_argument("--full", action="store_true",
                        help=f"a budget where the fault-free nets converge ({FULL_EPOCHS} epochs); writes "
                             "mortal_<dataset>-full.* beside the default run's files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: %(default)s)")
    parser.add_argument("--labelled", type=int, default=1000,
                        help="labels the distillation student has (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=5000,
                        help="images in each of the two co-distillation shards (default: %(default)s)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, metavar="ROW",
                        help="run only these faults and boxes (default: all; 'none', the fault-free row, is always "
                             f"run): {', '.join(ROWS[1:])}")
    parser.add_argument("--no-distillation", action="store_true",
                        help="skip the distillation runs (for the parts of a run split by seed but the first)")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="merge mortal result files of the same net and budget run with other seeds, "
                             "then stop (no training)")
    add_device_argument(parser)
    add_output_arguments(parser, "do not print each fault's errors")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str) -> dict:
    if args.merge:
        try:
            return merge([json.loads(path.read_text()) for path in args.merge], args.out_dir, command)
        except (OSError, ValueError, KeyError) as error:
            parser.error(f"--merge: {error}")
    device_or_usage_error(args.device, parser)
    data = experiment_data(args, DEFAULT_HIDDEN)
    epochs = args.epochs if args.epochs is not None else FULL_EPOCHS if args.full else DEFAULT_EPOCHS
    if len(args.hidden) < 2 or min(args.hidden) < 1 or epochs < 1:
        parser.error("need two or more positive --hidden sizes (the black box sits before layer 2) and --epochs >= 1")
    if not args.no_distillation and not (1 <= args.labelled <= len(data.x_train)
                                         and 1 <= 2 * args.shard_size <= len(data.x_train)):
        parser.error(f"--labelled and 2 x --shard-size must be within the {len(data.x_train)} training images")
    config = TrainConfig(epochs=epochs, eval_every=1, device=args.device)
    return run(data, tuple(args.hidden), config, args.seeds, args.labelled, args.shard_size, args.out_dir, command,
               progress=not args.quiet, with_distillation=not args.no_distillation, rows=args.rows)


def one_run(algorithm: str, backward: str, hidden: tuple[int, ...], data: Dataset, config: TrainConfig,
            fault: Fault, black_box: BlackBox | None = None) -> dict:
    """Train one learner on the faulty device, its gradient through faulty layers by `backward`; its final
    test error (FF: goodness) and its curve. A run that diverges is kept: its error is that of the diverged
    net (on the faulty device, as every other), and it says where it diverged."""
    learner_config = ForwardForwardConfig(hidden=hidden) if algorithm == "ff" else BackpropConfig(hidden=hidden)
    learner = make_mortal(make_learner(algorithm, data.n_features, data.n_classes, learner_config, config.seed),
                          fault, black_box, backward)
    start = time.perf_counter()
    try:
        history = fit(learner, data, config, progress=False)
        diverged = None
    except DivergedError as error:
        learner.eval()
        test = (data.x_test.to(learner.device), data.y_test.to(learner.device))
        history, diverged = [learner.evaluate(*test)], str(error)
    errors = {k: v for k, v in history[-1].items() if k.startswith("error")}
    curve_key = "error_softmax" if algorithm == "ff" else "error"
    run = {"error": errors.get("error_goodness", errors.get("error")), "errors": errors,
           "curve": [row[curve_key] for row in history if curve_key in row], "seconds": time.perf_counter() - start}
    if diverged:
        run["diverged"] = diverged
    if black_box is not None and black_box.mode == "surrogate":
        run["surrogate_error"] = {when: error.item() for when, error in black_box.surrogate_error.items()}
    return run


def run(data: Dataset, hidden: tuple[int, ...], config: TrainConfig, seeds: list[int], labelled: int,
        shard_size: int, out_dir: Path, command: str, progress: bool = True, with_distillation: bool = True,
        rows: list[str] | None = None) -> dict:
    started = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = {"hidden": list(hidden), "faults": [], "boxes": [], "distillation": None}

    def done(text: str) -> dict:
        if progress:
            print(text, flush=True)
        with_baselines(fields | {"seeds": seeds})
        return EXPERIMENT.write(data.name, command, started, seeds, asdict(config), fields, out_dir)

    def fault_row(family, level, sharing, make):
        row = {"fault": family, "level": level, "sharing": sharing, "description": make(0, 1).describe(), "runs": {}}
        independent = next((earlier for earlier in fields["faults"] if sharing == "shared" and (
            earlier["fault"], earlier["level"], earlier["sharing"]) == (family, level, "independent")), None)
        for name in ("ff", "bp-oracle") if family == "none" else FAULT_LEARNERS:
            if independent is not None and name in SHARING_BLIND:
                row["runs"][name] = [{**run, "same_as": independent["description"]}
                                     for run in independent["runs"][name]]
                continue
            row["runs"][name] = [one_run(*FAULT_LEARNERS[name], hidden, data, replace(config, seed=seed),
                                         make(seed, config.batch_size)) for seed in seeds]
        fields["faults"].append(row)
        done(f"{row['description']} ({sharing}): " + ", ".join(
            f"{name} {percent(mean_error(row, name))}" for name in row["runs"]))

    def box_row(box_name, rate):
        row = {"box": box_name, "drift": rate, "runs": {}}
        for name, (algorithm, mode) in BOX_LEARNERS.items():
            row["runs"][name] = [one_run(algorithm, "oracle", hidden, data, replace(config, seed=seed), Fault(),
                                         BlackBox(hidden[0], seed=seed, mode=mode, drift=rate)) for seed in seeds]
        fields["boxes"].append(row)
        done(f"{box_name} box: " + ", ".join(f"{name} {percent(mean_error(row, name))}" for name in row["runs"]))

    fault_row(*FAULTS[0])  # fault-free first, as every factor needs it; then the boxes; then the other faults
    for box_spec in BOXES:
        if rows is None or row_name(box_spec) in rows:
            box_row(*box_spec)
    for fault_spec in FAULTS[1:]:
        if rows is None or row_name(fault_spec) in rows:
            fault_row(*fault_spec)
    if not with_distillation:
        return done("no distillation (--no-distillation)")
    fields["distillation"] = distillation_runs(data, replace(config, seed=seeds[0], eval_every=0), labelled,
                                               shard_size)
    return done(f"distillation (seed {seeds[0]}): {fields['distillation']}")


def merge(parts: list[dict], out_dir: Path, command: str) -> dict:
    """One result from results of the same net and budget run in parts (other seeds, other --rows, other machines):
    the runs of each row are joined in seed order; where two parts ran the same row and seed (a row rerun after a
    fix), the newer part's run is kept; a row is kept where every seed has it. Every run keeps the fault-free error
    of its own part (same machine, same seed) for its degradation factor. The distillation is the newest part's
    that has one."""
    if any(part.get("benchmark") != "mortal" for part in parts):
        raise ValueError("every file must be a mortal result")
    parts = sorted(parts, key=lambda part: part["date"])
    first = parts[0]
    if any((part["hidden"], part["train_config"]["epochs"], part["dataset"]) != (
            first["hidden"], first["train_config"]["epochs"], first["dataset"]) for part in parts):
        raise ValueError("the parts differ in net, epochs or data set")
    seeds = sorted({seed for part in parts for seed in part["seeds"]})
    fields = {"hidden": first["hidden"],
              "distillation": next((p["distillation"] for p in reversed(parts) if p["distillation"]), None),
              "parts": [{"command": part["command"], "date": part["date"], "seeds": part["seeds"],
                         "ran_on": ran_on(part), "code_sha256": part["code_sha256"]} for part in parts]}
    for key, name in (("faults", "description"), ("boxes", "box")):
        runs: dict[str, dict] = {}  # row name -> {"row": row, "runs": {learner -> {seed: run}}}
        for part in parts:
            with_baselines(part)
            for row in part[key]:
                joined = runs.setdefault(row[name], {"row": row, "runs": {}})
                for learner, seed_runs in row["runs"].items():
                    joined["runs"].setdefault(learner, {}).update(zip(part["seeds"], seed_runs))
        fields[key] = [{**joined["row"], "runs": {learner: [by_seed[seed] for seed in seeds]
                                                  for learner, by_seed in joined["runs"].items()}}
                       for joined in runs.values()
                       if all(set(by_seed) == set(seeds) for by_seed in joined["runs"].values())]
    order = [spec[3](0, 1).describe() for spec in FAULTS]
    fields["faults"].sort(key=lambda row: order.index(row["description"]))
    newest = parts[-1]  # its provenance heads the result; each part's own (machine, code) is in "parts"
    started = {key: newest[key] for key in ("date", "machine", "versions", "code_sha256", "accelerator")
               if key in newest}
    return EXPERIMENT.write(first["dataset"], command, started, seeds, newest["train_config"], fields, out_dir)


def with_baselines(result: dict) -> dict:
    """Give every run of a faulty row the fault-free error of its own algorithm and seed in `result` (once)."""
    clean = {learner: dict(zip(result["seeds"], errors_of(result["faults"][0], learner)))
             for learner in result["faults"][0]["runs"]}
    for row in result["faults"][1:] + result["boxes"]:
        for learner, seed_runs in row["runs"].items():
            reference = clean["ff" if learner == "ff" else "bp-oracle"]
            for seed, run in zip(result["seeds"], seed_runs):
                run.setdefault("fault_free_error", reference[seed])
    return result


def distillation_runs(data: Dataset, config: TrainConfig, labelled: int, shard_size: int) -> dict:
    """Teacher -> student of another architecture; two nets on two shards: alone, co-distilled, averaged."""
    teacher = make_learner("bp", data.n_features, data.n_classes, BackpropConfig(hidden=(1000, 1000)), config.seed)
    fit(teacher, data, config, progress=False)  # leaves the teacher on the run's device; the data goes there too
    device = next(teacher.parameters()).device
    data = data.to(device)
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


# ----------------------------------------------------------------------------------------------------------
# Reading the result


def errors_of(row: dict, name: str) -> list[float]:
    return [run["error"] for run in row["runs"][name]]


def mean_error(row: dict, name: str) -> float:
    return statistics.mean(errors_of(row, name))


def factors(row: dict, name: str) -> list[float]:
    """Per seed: how many times the fault-free error of its own run (algorithm, seed, machine) it is."""
    return [run["error"] / run["fault_free_error"] for run in row["runs"][name]]


def mean_factor(row: dict, name: str) -> float:
    return statistics.mean(factors(row, name))


def spread(values: list[float], digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    """"mean (min-max)" over seeds."""
    mean = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}{suffix}"
    return f"{mean:.{digits}f}{suffix} ({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"


def diverged_mark(row: dict, name: str) -> str:
    count = sum(bool(run.get("diverged")) for run in row["runs"][name])
    return f" ({count} diverged)" if count else ""


def fault(result: dict, family: str, level, sharing: str = "-") -> dict:
    """The row of this fault; a KeyError where the run left it out (--rows)."""
    for row in result["faults"]:
        if (row["fault"], row["level"], row["sharing"]) == (family, level, sharing):
            return row
    raise KeyError(f"no {family} {level} ({sharing}) row")


def box(result: dict, name: str) -> dict:
    """The row of this box; a KeyError where the run left it out (--rows)."""
    for row in result["boxes"]:
        if row["box"] == name:
            return row
    raise KeyError(f"no {name} box row")


def fault_rows(result: dict, families) -> list[dict] | None:
    """The rows of every fault in FAULTS whose family `families` accepts, in FAULTS' order; None where the run left
    one out (--rows): a claim over these faults then has no figure from it."""
    try:
        return [fault(result, family, level, sharing) for family, level, sharing, _ in FAULTS if families(family)]
    except KeyError:
        return None


def noise_pairs(result: dict) -> list[tuple[dict, dict]] | None:
    """(independent, shared) rows of each noise kind and level; None where the run left one out."""
    rows = fault_rows(result, lambda family: family.endswith("noise"))
    if rows is None:
        return None
    shared = {(row["fault"], row["level"]): row for row in rows if row["sharing"] == "shared"}
    return [(row, shared[(row["fault"], row["level"])]) for row in rows if row["sharing"] == "independent"]


def analog(result: dict) -> list[dict] | None:
    """The noise, mismatch and drift rows; None where the run left one out."""
    return fault_rows(result, lambda family: family.endswith("noise") or family in ("mismatch", "drift"))


# A fault-free net counts as converged when its last epoch is within this of its best earlier epoch (mean test
# error over seeds): no longer clearly improving.
CONVERGED_WITHIN = 0.001


def mean_curve(row: dict, name: str) -> list[float]:
    """`name`'s test error per epoch in `row`, mean over seeds (FF: its softmax readout)."""
    return [statistics.mean(epoch) for epoch in zip(*[run["curve"] for run in row["runs"][name]])]


def fault_free_curve(result: dict, name: str) -> list[float]:
    return mean_curve(result["faults"][0], name)


# A learner counts as worse with more training on a faulty device when its last epoch's mean test error is more than
# this above its best epoch's
WORSE_BY = 0.005


def got_worse(row: dict) -> list[str]:
    """"ff 9.20% (epoch 3) -> 19.49%": the row's learners whose mean test error ended more than WORSE_BY above their
    best epoch; a factor read at the last epoch then measures the budget as much as the fault."""
    worse = []
    for name in row["runs"]:
        curve = mean_curve(row, name)
        best = min(range(len(curve)), key=curve.__getitem__)
        if curve[-1] > curve[best] + WORSE_BY:
            worse.append(f"{name} {percent(curve[best])} (epoch {best + 1}) -> {percent(curve[-1])}")
    return worse


def row_label(row: dict) -> str:
    return row["description"] if "description" in row else f"{row['box']} box"


def worse_with_training(result: dict) -> list[str]:
    """"additive noise 0.3: ff 9.20% (epoch 3) -> 19.49%, ...": every faulty row where a learner got worse."""
    return [f"{row_label(row)}: {', '.join(worse)}" for row in result["faults"][1:] + result["boxes"]
            if (worse := got_worse(row))]


def worse_note(rows: list[dict]) -> str:
    """For a claim over `rows`: which of them a learner ended worse than its best epoch at ("" where none)."""
    labels = [row_label(row) for row in rows if got_worse(row)]
    if not labels:
        return ""
    return f"; a learner ended over {100 * WORSE_BY:g} points above its best epoch at: {', '.join(labels)}"


def last_epoch_gain(result: dict, name: str) -> float | None:
    """How far `name`'s fault-free mean test error fell in its last epoch below its best earlier epoch; None after a
    single epoch."""
    curve = fault_free_curve(result, name)
    return min(curve[:-1]) - curve[-1] if len(curve) > 1 else None


def converged(result: dict) -> bool:
    gains = [last_epoch_gain(result, name) for name in result["faults"][0]["runs"]]
    return all(gain is not None and gain < CONVERGED_WITHIN for gain in gains)


def budget(result: dict) -> str:
    """"3 epochs, not converged (last epoch: ff -0.95, bp-oracle -0.41 points)": the run's budget, and whether the
    fault-free nets had stopped improving by its end."""
    gains = {name: last_epoch_gain(result, name) for name in result["faults"][0]["runs"]}
    changes = ", ".join(f"{name} {-100 * gain:+.2f}" for name, gain in gains.items() if gain is not None)
    epochs = result["train_config"]["epochs"]
    return (f"{epochs} epoch{'s' * (epochs != 1)}, {'' if converged(result) else 'not '}converged"
            + (f" (last epoch: {changes} points)" if changes else ""))


def box_factors(result: dict, name: str, box_name: str) -> list[float]:
    """Per seed: `name`'s error with the box over the fault-free error of its algorithm."""
    return factors(box(result, box_name), name)


def markdown(result: dict) -> str:
    hidden, seeds = net_label(result["hidden"]), len(result["seeds"])
    names = list(FAULT_LEARNERS)
    reused = any("same_as" in run for row in result["faults"] for runs in row["runs"].values() for run in runs)
    lines = [f"Net: {hidden} hidden, the same for FF and BP; {seeds} seed(s); each cell: mean (min-max over "
             "seeds). Test error (FF: goodness readout) with the fault in place during training and test, and "
             "the factor by which it grows over the learner's own fault-free error. BP oracle: autograd through "
             "the exact forward realisation (every noise sample; no hardware gives this); BP model: the forward "
             "pass on the device, the backward through the nominal model at the device's activations; BP in-situ: "
             "the backward pass on the same faulty device. FF's update uses its measured activities only."
             + (" For BP oracle and BP model (one forward pass per step, no draw in their backward pass) noise "
                "shared by FF's two passes is independent noise: their shared cells are the independent row's runs."
                if reused else ""), "",
             "| fault | level | sharing | " + " | ".join(names) + " | "
             + " | ".join(f"{n} factor" for n in names) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names * 2) + " |"]
    for row in result["faults"]:
        cells = [spread(errors_of(row, n), scale=100, suffix="%") + diverged_mark(row, n) if n in row["runs"] else "-"
                 for n in names]
        cells += [spread(factors(row, n)) if n in row["runs"] and row["fault"] != "none" else "-"
                  for n in names]
        lines.append(f"| {row['fault']} | {row['level']} | {row['sharing']} | " + " | ".join(cells) + " |")
    lines += ["", "Black box (tanh(R x), R random) before hidden layer 2, fixed or drifting (R moves by the stated "
              "fraction of its RMS per step); backprop through it is refused, so BP gets its honest substitutes. "
              "Error, and its factor over the algorithm's fault-free error:", "",
              "| box | drift/step | " + " | ".join(BOX_LEARNERS) + " | " + " | ".join(
                  f"{n} factor" for n in BOX_LEARNERS) + " |",
              "| --- | --- | " + " | ".join("---" for _ in list(BOX_LEARNERS) * 2) + " |"]
    for row in result["boxes"]:
        cells = [spread(errors_of(row, n), scale=100, suffix="%") for n in BOX_LEARNERS]
        cells += [spread(box_factors(result, n, row["box"])) for n in BOX_LEARNERS]
        lines.append(f"| {row['box']} | {row['drift']:g} | " + " | ".join(cells) + " |")
    surrogate = [run.get("surrogate_error") for row in result["boxes"] for run in row["runs"]["bp-surrogate"]]
    if surrogate and all(surrogate):
        lines += ["", "The surrogate's relative squared error on the box's outputs, first step -> last: " + "; ".join(
            f"{row['box']} {spread([r['surrogate_error']['first'] for r in row['runs']['bp-surrogate']], 3)} -> "
            f"{spread([r['surrogate_error']['last'] for r in row['runs']['bp-surrogate']], 3)}"
            for row in result["boxes"]) + "."]
    if any(run.get("diverged") for row in result["faults"] for runs in row["runs"].values() for run in runs):
        lines += ["", "(k diverged): k of the seeds' runs diverged (the loss grew over 10^4 times its first value); "
                  "their error is the diverged net's."]
    lines += ["", "Fault-free test error per epoch (FF: softmax readout), mean over seeds: " + "; ".join(
        f"{name} " + " -> ".join(map(percent, fault_free_curve(result, name))) for name in result["faults"][0]["runs"])
        + f". Budget: {budget(result)}: each mean error's last epoch against its best "
        f"earlier one; a net counts as converged when its last epoch is less than {100 * CONVERGED_WITHIN:g} points "
        "below that."]
    worse = worse_with_training(result)
    if worse:
        lines += ["", f"Worse with more training: the faulty rows where a learner's mean test error (FF: softmax "
                  f"readout) ended more than {100 * WORSE_BY:g} points above its best epoch (best -> last): "
                  + "; ".join(worse) + "."]
    if result.get("distillation"):
        lines += distillation_markdown(result["distillation"])
    if result.get("parts"):
        lines += ["", "Merged from these runs:", ""] + [f"- `{part['command']}` ({part['date']}, "
                                                        f"seeds {part['seeds']}, "
                                                        f"on {part['ran_on']})" for part in result["parts"]]
    return "\n".join(lines) + "\n"


def distillation_markdown(d: dict) -> list[str]:
    student = net_label(d["student_hidden"])
    lines = ["", f"Distillation (first seed): teacher {net_label(d['teacher_hidden'])} (BP, all labels) "
             f"{percent(d['teacher'])}; student {student} from its {d['labelled']} labels alone "
             f"{percent(d['student_from_labels'])}; the same student from the teacher's soft targets on the "
             f"training images (no labels) {percent(d['student_distilled'])}.", "",
             f"Two {student} nets on two shards of {d['shard_size']} images:", "",
             "| sharing | net 0 | net 1 | ensemble |", "| --- | --- | --- | --- |"]
    names = {"alone": "nothing", "codistill": "predictions (co-distillation)", "average": "weights (averaged)"}
    for mode, errors in d["shards"].items():
        lines.append(f"| {names[mode]} | {percent(errors['net0'])} | {percent(errors['net1'])} | "
                     f"{percent(errors['ensemble'])} |")
    return lines


def figures(result: dict, out_dir: Path) -> list[tuple[Path, str]]:
    groups = {(f"{row['fault']} {row['level']:g} ({row['sharing']})" if row["sharing"] != "-" else row["description"]):
              {name: factors(row, name) for name in row["runs"]} for row in result["faults"][1:]}
    groups |= {row_label(row): {name: box_factors(result, name, row["box"]) for name in row["runs"]}
               for row in result["boxes"]}
    if not groups:  # a run cut off after its fault-free row
        return []
    return [(plots.degradation_factors(groups, out_dir / f"mortal_{result['dataset']}.png",
                                       f"{result['dataset']}: error growth under each fault, "
                                       f"{len(result['seeds'])} seed(s) (bars: min-max)"),
             "FF vs BP on faulty hardware: how many times its fault-free error each learner's error becomes")]


# ----------------------------------------------------------------------------------------------------------
# The claims


def mean_net(result: dict, mode: str) -> float:
    errors = result["distillation"]["shards"][mode]
    return (errors["net0"] + errors["net1"]) / 2


def eight_bits(result: dict, name: str) -> tuple[float, float]:
    """`name`'s mean test error at 8 bits, and the mean of the same runs' fault-free errors."""
    runs = fault(result, "low precision (bits)", 8)["runs"][name]
    return statistics.mean(run["error"] for run in runs), statistics.mean(run["fault_free_error"] for run in runs)


def eight_bits_cost(result: dict, name: str) -> bool:
    """Whether 8 bits cost `name` more than 0.3 points of mean test error."""
    faulty, exact = eight_bits(result, name)
    return faulty > exact + 0.003


def best_hardware_bp(row: dict) -> float:
    """The smaller mean degradation of backprop as hardware allows it (model-based or in-situ)."""
    return min(mean_factor(row, name) for name in BP_AS_HARDWARE_ALLOWS)


def shared_helps_ff_more(independent: dict, shared: dict) -> bool:
    """Claim (b) for one noise: sharing lowers FF's degradation, and lowers it relative to hardware BP's."""
    ratio = {sharing: mean_factor(row, "ff") / best_hardware_bp(row)
             for sharing, row in (("independent", independent), ("shared", shared))}
    return (mean_factor(shared, "ff") < mean_factor(independent, "ff")
            and ratio["shared"] < ratio["independent"])


def box_claim(result: dict, box_name: str) -> str:
    return "; ".join(f"{name} x{spread(box_factors(result, name, box_name))}" for name in BOX_LEARNERS)


def box_reproduced(result: dict, box_name: str) -> bool:
    ff = statistics.mean(box_factors(result, "ff", box_name))
    return ff < min(statistics.mean(box_factors(result, name, box_name)) for name in BP_BOX_SUBSTITUTES)


def eight_bits_claim(result: dict) -> str | None:
    """FF's and BP's mean error at 8 bits beside their exact nets'; None without the 8-bit row."""
    try:
        row = fault(result, "low precision (bits)", 8)
    except KeyError:
        return None
    figures = {name: eight_bits(result, name) for name in ("ff", "bp-oracle")}
    return "; ".join(f"{name} {percent(faulty)} at 8 bits vs {percent(exact)} exact"
                     for name, (faulty, exact) in figures.items()) + (
        f" ({len(result['seeds'])} seeds); {budget(result)}" + worse_note([row]))


def shared_noise_claim(result: dict) -> str | None:
    """FF's and hardware BP's factors under each noise, independent and shared; None without every noise row."""
    pairs = noise_pairs(result)
    if pairs is None:
        return None
    return "; ".join(f"{independent['description']}: FF x{mean_factor(independent, 'ff'):.2f} independent, "
                     f"x{mean_factor(shared, 'ff'):.2f} shared; best hardware BP "
                     f"x{best_hardware_bp(independent):.2f}, x{best_hardware_bp(shared):.2f}"
                     for independent, shared in pairs) + (
        f" ({FACTOR_NOTE.split(', ')[0]}, {len(result['seeds'])} seeds); {budget(result)}"
        + worse_note([row for pair in pairs for row in pair]))


def graceful_claim(result: dict) -> str | None:
    """FF's and hardware BP's factors under each noise, mismatch and drift; None without every one of those rows."""
    rows = analog(result)
    if rows is None:
        return None
    return "; ".join(f"{row['description']}: FF x{mean_factor(row, 'ff'):.2f}, BP x{best_hardware_bp(row):.2f} "
                     f"(oracle x{mean_factor(row, 'bp-oracle'):.2f})" for row in rows) + f"; {budget(result)}" + (
        worse_note(rows))


MNIST_COMMAND = "python benchmarks/mortal.py --dataset mnist --data-dir DIR"
# The claims of FF against BP are checked on the --full run (where the fault-free nets converged) where it has the rows
# they read, else on the default run (a run split by --rows may lack some); the larger net's --full run, where it has
# a claim's rows, adds its own figure and verdict beside the default net's
LARGER_NET = (1000, 1000)
CONVERGED_RUN = {"paper_result": "mortal_mnist-full", "scales": (f"{FULL_EPOCHS} epochs (--full)",
                                                                 f"{DEFAULT_EPOCHS} epochs"),
                 "also_results": (f"mortal_mnist-full-{net_label(LARGER_NET)}",)}
FACTOR_NOTE = "error factors over each learner's fault-free error, mean (min-max) over seeds"

CLAIMS = (
    Claim("Mortal hardware", "8 bits are enough for brain-like networks", "8-bit weights and activities",
          "Hinton 2022, sec. 8", "mortal_mnist", MNIST_COMMAND,
          ours=eight_bits_claim,
          differs=lambda r: None if not any(eight_bits_cost(r, name) for name in ("ff", "bp-oracle")) else (
              "8 bits cost more than 0.3 points for " + ", ".join(
                  name for name in ("ff", "bp-oracle") if eight_bits_cost(r, name))),
          reproduced_when="mean 8-bit error within 0.3 points of the exact net's, for FF and BP", **CONVERGED_RUN),
    Claim("Mortal hardware", "\"If you have a layer in the middle ... where you don't know what the transformation "
          "is ... the backprop algorithm doesn't work\": FF learns through an unknown layer", "qualitative",
          "Hinton 2022, sec. 8; the talk", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: f"fixed box, {FACTOR_NOTE}: {box_claim(r, 'fixed')}; {budget(r)}" + worse_note(
              [box(r, "fixed")]),
          differs=lambda r: None if box_reproduced(r, "fixed") else (
              "a BP substitute (layers above the box, straight-through or a surrogate of the box) degrades less "
              "than FF here"),
          reproduced_when="FF's error grows by a smaller factor than every BP substitute's", **CONVERGED_RUN),
    Claim("Mortal hardware", "\"... and maybe the transformation is not even stationary\": FF keeps learning through "
          "a drifting unknown layer where backprop through a learned model of it degrades", "qualitative",
          "Hinton 2022, sec. 8; the talk", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: f"box drifting by {box(r, 'drifting')['drift']:g} of its RMS per step, {FACTOR_NOTE}: "
                         f"{box_claim(r, 'drifting')}; {budget(r)}" + worse_note([box(r, "drifting")]),
          differs=lambda r: None if box_reproduced(r, "drifting") else (
              "a BP substitute degrades less than FF with the drifting box here"),
          reproduced_when="FF's error grows by a smaller factor than every BP substitute's", **CONVERGED_RUN),
    Claim("Mortal hardware", "\"The contrast between positive data and negative data allows you to cancel ... all "
          "these internal noises ... because they're the same in both forward passes\": noise shared by the two "
          "passes hurts FF less than independent noise, relative to backprop as hardware allows it",
          "qualitative", "Hinton 2022, the talk", "mortal_mnist", MNIST_COMMAND,
          ours=shared_noise_claim,
          differs=lambda r: None if all(shared_helps_ff_more(*pair) for pair in noise_pairs(r)) else (
              "not for every noise: " + ", ".join(independent["description"] for independent, shared in noise_pairs(r)
                                                   if not shared_helps_ff_more(independent, shared))),
          reproduced_when="for every noise, sharing lowers FF's factor, and its ratio to the best hardware BP's",
          **CONVERGED_RUN),
    Claim("Mortal hardware", "FF degrades more gracefully than backprop on noisy, drifting analog hardware (backprop "
          "as hardware allows it: model-based or in-situ)", "qualitative", "Hinton 2022, sec. 8", "mortal_mnist",
          MNIST_COMMAND,
          ours=graceful_claim,
          differs=lambda r: None if all(mean_factor(row, "ff") <= best_hardware_bp(row) for row in analog(r))
          else "hardware BP's error grows less at: " + ", ".join(
              row["description"] for row in analog(r) if mean_factor(row, "ff") > best_hardware_bp(row)),
          reproduced_when="for every noise, mismatch and drift, FF's mean factor is no larger than the better "
                          "hardware BP's", **CONVERGED_RUN),
    Claim("Mortal hardware", "A teacher's knowledge reaches a student of another architecture through its "
          "predictions", "MNIST student 146 -> 74 errors (Hinton, Vinyals & Dean 2015)",
          "Hinton, Vinyals & Dean 2015", "mortal_mnist", MNIST_COMMAND,
          ours=lambda r: (f"student {net_label(r['distillation']['student_hidden'])}: "
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
    help="FF vs BP on faulty hardware (black boxes, shared and independent noise, mismatch, drift, few bits); "
         "distillation", description=__doc__,
    code=(forward_forward, backprop, train, cuda_graphs, hardware, distillation), add_arguments=add_arguments,
    run_from_args=run_from_args, markdown=markdown, figures=figures,
    readme_figure=("mortal_mnist", "mortal_mnist.png",
                   "FF vs BP on faulty hardware: how many times its fault-free error each learner's error becomes"),
    claims=CLAIMS)
