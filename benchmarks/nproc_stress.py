"""Stress check of the multi-process teardown: run the 2-process CLI command many times and count failures.

    python benchmarks/nproc_stress.py            # 30 runs of `brainlearn train bp --dataset digits --epochs 1
                                                 # --nproc 2`, about 5 minutes on 2 cores
    python benchmarks/nproc_stress.py --runs 5

A finished run must exit 0 every time: before the orderly shutdown (`distributed.shutdown`), a rank
could abort in gloo's teardown after training had finished (about 1 run in 5). Writes
benchmarks/results/nproc_stress_digits.{json,md} with every failure's exit code and last lines of
output. Not part of the test suite (too slow); the suite keeps one run of the command.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brainlearn import bench

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--runs", type=int, default=30)
parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
args = parser.parse_args()

started = bench.environment()
failures, seconds = [], []
with tempfile.TemporaryDirectory() as tmp:
    for run in range(args.runs):
        command = [sys.executable, "-m", "brainlearn", "train", "bp", "--dataset", "digits", "--epochs", "1",
                   "--nproc", "2", "--run-dir", f"{tmp}/run{run}"]
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if finished.returncode != 0:
            failures.append({"run": run, "exit_code": finished.returncode,
                             "output_tail": (finished.stdout + finished.stderr)[-2000:]})
        print(f"run {run + 1}/{args.runs}: exit {finished.returncode} ({seconds[-1]:.1f} s)", flush=True)


def markdown(result: dict) -> str:
    lines = [f"The command `{result['stressed_command']}` ran {result['runs']} times: "
             f"**{len(result['failures'])} failed**; {result['seconds_per_run']:.1f} s per run, "
             f"{result['total_seconds'] / 60:.1f} min in all.", ""]
    for failure in result["failures"]:
        lines += [f"- run {failure['run']}: exit code {failure['exit_code']}"]
    return "\n".join(lines) + "\n"


bench.write_result("nproc_stress", "digits", " ".join(["python", "benchmarks/nproc_stress.py", *sys.argv[1:]]),
                   started, [0], {"epochs": 1, "batch_size": 100, "processes": 2},
                   {"stressed_command": "brainlearn train bp --dataset digits --epochs 1 --nproc 2 --run-dir DIR",
                    "runs": args.runs, "failures": failures, "seconds_per_run": sum(seconds) / len(seconds),
                    "total_seconds": sum(seconds)}, args.out_dir, markdown)
print(f"{len(failures)} of {args.runs} runs failed")
sys.exit(1 if failures else 0)
