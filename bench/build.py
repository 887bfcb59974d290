"""Time ``hapta-gen build`` on the postly example and on synthetic schemas of growing size.

    python bench/build.py                        # example + 10, 100, 1000 collections
    python bench/build.py --sizes 10,100 --repeat 3

Each build is a real ``hapta-gen build --schema S --out TMP`` process. Its progress lines on
stderr are timestamped as they arrive, which splits the wall time into phases (interpreter start
and imports, load, analyse, render, format, write). Seconds per collection show how the cost
grows: it should stay flat (linear growth). Results go to ``bench/results/build-*.json`` and
``.md`` (gitignored) and are printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import results_dir, stamp, write_results  # noqa: E402
from bench.synth import synthetic_schema  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "postly" / "pb_schema.json"
#: progress line prefix -> the phase that ends when it is printed
PHASES = (
    ("reading ", "start"),
    ("loaded ", "load"),
    ("analysed ", "analyse"),
    ("rendered ", "render"),
    ("formatted", "format"),
    ("built ", "write"),
)


@dataclass
class BuildRun:
    schema: str
    collections: int
    seconds: float
    files: int = 0
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class BuildRow:
    schema: str
    collections: int
    files: int
    seconds: float
    per_collection: float
    phases: dict[str, float]
    runs: list[float]


def hapta_gen_command() -> list[str]:
    """The installed ``hapta-gen`` next to this Python, else ``python -m hapta_gen.cli``."""
    script = Path(sys.executable).parent / ("hapta-gen.exe" if os.name == "nt" else "hapta-gen")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "hapta_gen.cli"]


def time_build(schema_path: Path, label: str, collections: int, timeout: float) -> BuildRun:
    """One ``hapta-gen build`` into a fresh temp dir; wall time and per-phase split."""
    with tempfile.TemporaryDirectory(prefix="hapta-bench-build-") as tmp:
        out = Path(tmp) / "generated"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        cmd = [*hapta_gen_command(), "build", "--schema", str(schema_path), "--out", str(out)]
        started = time.perf_counter()
        marks: list[tuple[str, float]] = []
        lines: list[str] = []
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        deadline = started + timeout
        for line in proc.stderr:
            now = time.perf_counter()
            lines.append(line.rstrip())
            text = line.strip()
            for prefix, phase in PHASES:
                if text.startswith(prefix):
                    marks.append((phase, now))
            if now > deadline:
                proc.kill()
                break
        code = proc.wait()
        seconds = time.perf_counter() - started
        if code != 0:
            tail = "\n".join(lines[-5:])
            raise SystemExit(f"hapta-gen build failed on {label} (exit {code}):\n{tail}")
        files = sum(1 for p in out.rglob("*") if p.is_file())
    phases: dict[str, float] = {}
    previous = started
    for phase, at in marks:
        phases[phase] = round(at - previous, 3)
        previous = at
    return BuildRun(label, collections, round(seconds, 3), files, phases)


def summarise(runs: list[BuildRun]) -> BuildRow:
    """Median of repeated runs of one schema (phases: the median run's)."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    seconds = statistics.median(r.seconds for r in runs)
    return BuildRow(
        schema=middle.schema,
        collections=middle.collections,
        files=middle.files,
        seconds=round(seconds, 3),
        per_collection=round(seconds / middle.collections, 4),
        phases=middle.phases,
        runs=[r.seconds for r in runs],
    )


def markdown(rows: list[BuildRow]) -> str:
    names = [p for _, p in PHASES]
    head = "| schema | collections | files | seconds | s / collection | " + " | ".join(
        f"{n} s" for n in names
    ) + " |"
    sep = "|---|---:|---:|---:|---:|" + "---:|" * len(names)
    body = [
        f"| {r.schema} | {r.collections} | {r.files} | {r.seconds:.2f} | {r.per_collection:.3f} | "
        + " | ".join(f"{r.phases[n]:.2f}" if n in r.phases else "-" for n in names)
        + " |"
        for r in rows
    ]
    synthetic = [r for r in rows if r.schema.startswith("synthetic")]
    notes = []
    for small, large in itertools.pairwise(synthetic):
        marginal = (large.seconds - small.seconds) / (large.collections - small.collections)
        notes.append(
            f"- {small.collections} -> {large.collections} collections: "
            f"{marginal:.3f} s per added collection"
        )
    if notes:
        notes.insert(0, "\nMarginal cost (constant when growth is linear):\n")
    if len(synthetic) >= 2:
        small, large = synthetic[-2], synthetic[-1]
        factor = large.collections / small.collections
        growth = ", ".join(
            f"{n} x{large.phases[n] / small.phases[n]:.1f}"
            for n in names
            if small.phases.get(n) and n in large.phases
        )
        notes.append(
            f"\nPer phase, {small.collections} -> {large.collections} collections "
            f"(x{factor:g}; linear growth is about x{factor:g}): {growth}"
        )
    return "\n".join([head, sep, *body, *notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="synthetic schema sizes (collections)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per schema (median is reported)")
    parser.add_argument("--no-example", action="store_true", help="skip the postly example")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per build")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    rows: list[BuildRow] = []
    with tempfile.TemporaryDirectory(prefix="hapta-bench-schemas-") as tmp:
        cases: list[tuple[str, Path, int]] = []
        if not args.no_example:
            count = len(json.loads(EXAMPLE.read_text("utf-8")))
            cases.append(("postly example", EXAMPLE, count))
        for n in sizes:
            path = Path(tmp) / f"synthetic_{n}.json"
            path.write_text(json.dumps(synthetic_schema(n), indent=1), "utf-8")
            cases.append((f"synthetic {n}", path, n))
        for label, path, count in cases:
            runs = []
            for _ in range(max(1, args.repeat)):
                run = time_build(path, label, count, args.timeout)
                print(f"  {label}: {run.seconds:.2f} s {run.phases}", file=sys.stderr, flush=True)
                runs.append(run)
            rows.append(summarise(runs))

    table = markdown(rows)
    meta = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "repeat": args.repeat}
    json_path, md_path = write_results(
        results_dir(), f"build-{stamp()}", {"meta": meta, "rows": [asdict(r) for r in rows]}, table
    )
    print(table)
    print(f"results: {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
