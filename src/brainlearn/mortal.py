"""Mortal-hardware benchmark: FF vs BP on the same net under each hardware fault, and knowledge
passed by distillation (activity) instead of weights.

    brainlearn bench mortal --data-dir DIR       # MNIST, about 30 minutes on 2 cores

Every fault run trains FF and BP from the same initial weights for the same epochs on the same
data, with the fault in place during training and test (see `hardware`). Backprop through the
black box is refused; BP's two honest substitutes are reported under their own names.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from . import bench
from .algorithms import BackpropConfig, ForwardForwardConfig
from .data import Dataset
from .distillation import distill, from_labels, error_rates, two_shards
from .hardware import BlackBox, Drift, Fault, Noise, Quantize, make_mortal
from .train import TrainConfig, fit, make_learner

# (fault family, level, the fault). Levels: noise as a fraction of each tensor's RMS (additive) or of
# each value (multiplicative); drift per step as a fraction of the initial weight RMS; bits.
FAULTS = [("none", "-", lambda: Fault())]
FAULTS += [("additive noise", level, lambda level=level: Noise(level, "additive")) for level in (0.1, 0.3, 1.0)]
FAULTS += [("multiplicative noise", level, lambda level=level: Noise(level, "multiplicative")) for level in (0.3, 1.0)]
FAULTS += [("drift", rate, lambda rate=rate: Drift(rate)) for rate in (1e-4, 1e-3, 1e-2)]
FAULTS += [("low precision (bits)", bits, lambda bits=bits: Quantize(bits)) for bits in (2, 4, 8, 16)]
BOX_LEARNERS = [("ff", "ff", "refuse"), ("bp-above-box", "bp", "above"),
                ("bp-straight-through", "bp", "straight-through")]


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


def mortal_benchmark(data: Dataset, hidden: tuple[int, ...], config: TrainConfig, labelled: int,
                     shard_size: int, out_dir: Path, command: str, progress: bool = True) -> dict:
    started = bench.environment()
    out_dir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    faults = []
    for family, level, make in FAULTS:
        row = {"fault": family, "level": level, "description": make().describe()}
        for algorithm in ("ff", "bp"):
            row[algorithm] = fault_run(algorithm, hidden, data, config, make())
        say(f"{row['description']}: FF {bench.percent(row['ff']['error'])}, BP {bench.percent(row['bp']['error'])}")
        faults.append(row)
    box = {"fault": "black box", "level": "-", "description": "black box before hidden layer 2"}
    for name, algorithm, mode in BOX_LEARNERS:
        box[name] = fault_run(algorithm, hidden, data, config, Fault(), mode)
        say(f"black box: {name} {bench.percent(box[name]['error'])}")

    distillation = distillation_runs(data, config, labelled, shard_size)
    say(f"distillation: {distillation}")
    fields = {"hidden": list(hidden), "faults": faults, "black_box": box, "distillation": distillation}
    return bench.write_result("mortal", data.name, command, started, [config.seed], asdict(config), fields,
                              out_dir, mortal_markdown)


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


def mortal_markdown(result: dict) -> str:
    hidden = "-".join(map(str, result["hidden"]))
    lines = [f"Net: {hidden} hidden, the same for FF and BP. Test error (FF: goodness readout) with the fault "
             "in place during training and test.", "",
             "| fault | level | FF | BP | BP / FF |", "| --- | --- | --- | --- | --- |"]
    for row in result["faults"]:
        ff, bp = row["ff"]["error"], row["bp"]["error"]
        lines.append(f"| {row['fault']} | {row['level']} | {bench.percent(ff)} | {bench.percent(bp)} | "
                     f"{bp / ff:.2f} |")
    box = result["black_box"]
    lines += ["", "Black box (a fixed random tanh layer) before hidden layer 2; backprop through it is refused:", "",
              "| learner | test error |", "| --- | --- |"]
    lines += [f"| {name} | {bench.percent(box[name]['error'])} |" for name, _, _ in BOX_LEARNERS]
    d = result["distillation"]
    student = "-".join(map(str, d["student_hidden"]))
    lines += ["", f"Distillation: teacher {'-'.join(map(str, d['teacher_hidden']))} (BP, all labels) "
              f"{bench.percent(d['teacher'])}; student {student} from its {d['labelled']} labels alone "
              f"{bench.percent(d['student_from_labels'])}; the same student from the teacher's soft targets on the "
              f"training images (no labels) {bench.percent(d['student_distilled'])}.", "",
              f"Two {student} nets on two shards of {d['shard_size']} images:", "",
              "| sharing | net 0 | net 1 | ensemble |", "| --- | --- | --- | --- |"]
    names = {"alone": "nothing", "codistill": "predictions (co-distillation)", "average": "weights (averaged)"}
    for mode, errors in d["shards"].items():
        lines.append(f"| {names[mode]} | {bench.percent(errors['net0'])} | {bench.percent(errors['net1'])} | "
                     f"{bench.percent(errors['ensemble'])} |")
    return "\n".join(lines) + "\n"
