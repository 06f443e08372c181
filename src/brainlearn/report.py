"""`brainlearn report`: RESULTS.md, its figures and the README's results block, regenerated from the
JSON results under benchmarks/results/.

The claims table pairs each checkable claim of the works brainlearn implements with our figure.
Published figures are quoted with their source; ours are read from the result files, never typed:
a claim without a result file says "not yet run" and the command that would produce it. A result
whose algorithm code changed since it ran is marked stale (the JSON holds the code's hashes).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .experiments import ALL_CODE, BY_RESULT, CLAIMS, EXPERIMENTS
from .experiments.common import Claim, code_hashes, ran_on

README_START, README_END = "<!-- report:start -->", "<!-- report:end -->"
# The experiments whose `readme_figure` the README shows, in this order.
README_FIGURES = ("ff-vs-bp", "dbn-vs-bp", "eqprop-vs-bp", "wave-rnn", "mortal", "rff-vs-bp")
PROVENANCE = ("benchmark", "dataset", "command", "date", "machine", "versions", "seeds")


@dataclass
class Row:
    claim: Claim
    ours: str
    status: str
    command: str
    scale: str = ""  # the scale it ran at and where: "paper's; NVIDIA H100 80GB HBM3"


def load_result(path: Path) -> tuple[dict | None, str]:
    """The result JSON, or None and why it cannot be used."""
    if not path.exists():
        return None, "no result file"
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            raise ValueError("not a JSON object")
        missing = [key for key in PROVENANCE if key not in result]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return result, ""
    except (ValueError, UnicodeDecodeError) as error:
        return None, f"{path.name} is malformed ({error})"


def stale_modules(result: dict) -> list[str]:
    """The modules the result's numbers depend on that changed since it ran (since any of its parts ran, for a
    result merged from parts); for a result of no experiment (a benchmark script's), every module it recorded, sorted
    by module name (the same report on every run)."""
    ran = [result.get("code_sha256", {})] + [part.get("code_sha256", {}) for part in result.get("parts", [])]
    experiment = BY_RESULT.get(result.get("benchmark"))
    known = {module.__name__: module for module in ALL_CODE}
    recorded = {name for hashes in ran for name in hashes}
    modules = experiment.code if experiment else tuple(known[name] for name in sorted(recorded) if name in known)
    now = code_hashes(modules)
    return [name.rsplit(".", 1)[-1] for name, digest in now.items()
            if any(name in hashes and hashes[name] != digest for hashes in ran)]


# What a claim's `ours` or `differs` raises on a result that lacks what it reads
LACKING = (KeyError, IndexError, TypeError, StopIteration)


def covers(claim: Claim, result: dict | None) -> bool:
    """Whether `result` is there and holds what `claim` reads: a run split by rows may leave out what a claim
    checks, and its `ours` then gives None. A result that lacks what it should have counts as covering (the
    claim's row then says what it lacks)."""
    if result is None or claim.ours is None:
        return False
    try:
        return claim.ours(result) is not None
    except LACKING:
        return True


def verdict(differs: str | None, result: dict) -> str:
    stale = stale_modules(result)
    return ("reproduced" if differs is None else f"differs: {differs}") + (
        f" (stale: {', '.join(stale)} changed since this run)" if stale else "")


def evaluate_claim(claim: Claim, results: dict[str, tuple[dict | None, str]], problems: list[str]) -> Row:
    """Our figure for `claim`, from its paper-scale run where that exists and covers the claim, else from its
    default run."""
    paper_scale = bool(claim.paper_result) and covers(claim, results.get(claim.paper_result, (None, ""))[0])
    stem = claim.paper_result if paper_scale else claim.result
    result, why_missing = results[stem]
    if claim.ours is None:
        return Row(claim, "", f"not yet run: {claim.not_run_why}", "")
    if result is None:
        if why_missing != "no result file":
            problems.append(why_missing)
        return Row(claim, "", f"not yet run: {why_missing}", f"`{claim.command}`")
    try:
        ours = claim.ours(result)
        if ours is None:  # this result does not cover the claim
            return Row(claim, "", f"not yet run: {claim.not_run_why}", f"`{claim.command}`")
        differs = claim.differs(result)
    except LACKING as error:
        problems.append(f"{stem}.json lacks what the claim needs ({type(error).__name__}: {error})")
        return Row(claim, "", f"not yet run: {stem}.json is malformed", f"`{claim.command}`")
    status = verdict(differs, result)
    for other_stem in claim.also_results:
        other = results.get(other_stem, (None, ""))[0]
        if other is None:
            continue
        try:
            figure = claim.ours(other)
            if figure is None:  # that run does not cover the claim
                continue
            other_verdict = verdict(claim.differs(other), other)
        except LACKING as error:
            problems.append(f"{other_stem}.json lacks what the claim needs ({type(error).__name__}: {error})")
            continue
        ours += f"; {other_stem} ({ran_on(other)}): {figure}"
        status += f"; {other_stem}: {other_verdict}"
    scale = claim.scales[0 if paper_scale else 1] + "; " if claim.paper_result else ""
    return Row(claim, ours, status, f"`{result['command']}`", scale + ran_on(result))


def claims_table(rows: list[Row]) -> list[str]:
    lines = ["| topic | claim | published | source | ours | scale; ran on | reproduced when | status | command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        c = row.claim
        lines.append(f"| {c.topic} | {c.claim} | {c.published} | {c.source} | {row.ours or '-'} | {row.scale or '-'} | "
                     f"{c.reproduced_when or '-'} | {row.status} | {row.command or '-'} |")
    return lines


def provenance(result: dict) -> str:
    machine, versions = result["machine"], result["versions"]
    return (f"{result['date']}, {machine['processor']} with {machine['cpu_count']} CPUs "
            f"({machine['torch_threads']} torch threads), torch {versions['torch']}, python {versions['python']}; "
            f"trained on {ran_on(result)}")


def generate(results_dir: Path, readme_dir: Path = Path(".")) -> tuple[str, str, list[str]]:
    """RESULTS.md text, the README block (links relative to `readme_dir`), and the problems found;
    draws the figures the JSON holds."""
    stems = sorted({c.result for c in CLAIMS} | {c.paper_result for c in CLAIMS if c.paper_result}
                   | {stem for c in CLAIMS for stem in c.also_results}
                   | {p.stem for p in results_dir.glob("*.json")})
    results = {stem: load_result(results_dir / f"{stem}.json") for stem in stems}
    problems: list[str] = []
    rows = [evaluate_claim(claim, results, problems) for claim in CLAIMS]
    lines = ["# Results", "",
             "Regenerated by `brainlearn report` from the JSON files in `benchmarks/results/`; edit those runs, not "
             "this file. Published figures are quoted from their source; every figure of ours is read from a "
             "result file.", "", "## Claims", "", *claims_table(rows), "", "## Runs and figures", ""]
    for stem, (result, _) in results.items():
        if result is None:
            continue
        lines += [f"### {stem}", "", f"`{result['command']}` on {provenance(result)}. Details: [{stem}.md]({stem}.md).",
                  ""]
        stale = stale_modules(result)
        if stale:
            lines += [f"**Stale:** {', '.join(stale)} changed since this run; rerun the command above.", ""]
        experiment = BY_RESULT.get(result["benchmark"])
        figures = []
        if experiment is not None:
            try:
                figures = experiment.figures(result, results_dir)
            except (KeyError, IndexError, TypeError, ValueError) as error:
                problems.append(f"{stem}.json: its figures cannot be drawn ({type(error).__name__}: {error})")
            figures += [(results_dir / pattern.format(dataset=result["dataset"]), caption)
                        for pattern, caption in experiment.trained_net_figures]
        for path, caption in figures:
            if path.exists():
                lines += [f"![{caption}]({path.name})", f"*{caption}.*", ""]
    link = Path(os.path.relpath(results_dir, readme_dir)).as_posix()
    readme = [f"Regenerated by `brainlearn report` from `{link}/` (every claim, run and figure: "
              f"[RESULTS.md]({link}/RESULTS.md)).", "", *claims_table([r for r in rows if r.ours]), ""]
    for stem, name, caption in (EXPERIMENTS[experiment].readme_figure for experiment in README_FIGURES):
        result = results[stem][0] if stem in results else None
        if result is not None and (results_dir / name).exists():
            readme += [f"![{caption}]({link}/{name})", "", f"*{caption}.* Made by `{result['command']}`.", ""]
    return "\n".join(lines) + "\n", "\n".join(readme) + "\n", problems


def write_report(results_dir: Path, readme: Path | None) -> list[str]:
    """Write RESULTS.md into `results_dir` and, where `readme` has the markers, its results block."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no results folder {results_dir}; run a benchmark first (see the README)")
    text, block, problems = generate(results_dir, readme.parent if readme is not None else results_dir)
    (results_dir / "RESULTS.md").write_text(text)
    if readme is not None and readme.exists():
        content = readme.read_text()
        if README_START in content and README_END in content:
            head, rest = content.split(README_START, 1)
            _, tail = rest.split(README_END, 1)
            readme.write_text(f"{head}{README_START}\n{block}{README_END}{tail}")
        else:
            problems.append(f"{readme} has no {README_START} ... {README_END} block; left unchanged")
    for problem in problems:
        print(f"brainlearn report: warning: {problem}", file=sys.stderr)
    return problems
