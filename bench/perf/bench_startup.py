"""How long each command takes to answer ``--help`` and a bad word: answered before torch, Ray and MLflow load.

    python bench/perf/bench_startup.py [repeats=3] [json=OUT.json]

Each command runs as a user runs it (``python -m NAME``, a fresh interpreter), ``repeats`` times for
``--help`` and for a typo (``bogus=1``, one ``error:`` line and exit 2); the table gives the median wall
seconds of each, and for comparison the seconds to import the heavy modules a full run needs
(torch, ray.tune, mlflow) in one fresh interpreter. ``search.node_start`` hands words it does not know to
``ray start``, so only its ``--help`` is timed. Nothing is written but ``json=``.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ensembling.cli import COUNT, TEXT, command, parse_args

COMMANDS = (
    "search.run", "search.node_start", "trainables.fit", "trainables.inspect", "trainables.data",
    "ensembling.select", "ensembling.export", "ensembling.predict", "ensembling.refit", "ensembling.score", "ensembling.lb",
)
PASS_THROUGH = ("search.node_start",)  # hands words it does not know to `ray start`: a typo would start Ray
USAGE = "python bench/perf/bench_startup.py [repeats=3] [json=OUT.json]"


def timed(words: list[str], expect: int | None) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, *words], capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - began
    if expect is not None and done.returncode != expect:
        raise ValueError(f"{' '.join(words)}: exit {done.returncode}, expected {expect}: {done.stderr.strip()[-300:]}")
    return seconds


def measure(repeats: int) -> dict[str, dict[str, float]]:
    rows = {}
    for name in COMMANDS:
        help_s = [timed(["-m", name, "--help"], 0) for _ in range(repeats)]
        rows[name] = {"help_s": statistics.median(help_s)}
        if name not in PASS_THROUGH:  # trainables.data takes no keys: any word but -h is refused with exit 2
            rows[name]["typo_s"] = statistics.median(timed(["-m", name, "bogus=1"], 2) for _ in range(repeats))
        typo = f"typo {rows[name]['typo_s']:6.2f} s" if "typo_s" in rows[name] else "typo: passed on to ray start, not run"
        print(f"{name:<22} --help {rows[name]['help_s']:6.2f} s   {typo}", flush=True)
    heavy = statistics.median(timed(["-c", "import torch, ray.tune, mlflow"], 0) for _ in range(repeats))
    print(f"{'(import torch, ray.tune, mlflow)':<22}        {heavy:6.2f} s")
    return {"commands": rows, "heavy_imports_s": heavy}


def main(argv: list[str]) -> int:
    def body() -> None:
        args = parse_args(argv, [], {"repeats": COUNT, "json": TEXT}, USAGE)
        result = measure(args.get("repeats", 3))
        if args.get("json"):
            record = {**result, "python": sys.version.split()[0], "machine": platform.platform(), "date": time.strftime("%Y-%m-%d")}
            Path(args["json"]).write_text(json.dumps(record, indent=1))

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
