"""Start-up: how long until `bpttlab --help` prints, and what `import bpttlab.store` loads.

Each command runs in a fresh interpreter (as a user's shell would start it), 7 times; the median
wall time is reported. ``--src`` points at another checkout's ``src`` folder to measure it the
same way (e.g. the tree before the lazy re-exports).

    python benchmarks/bench_startup.py [--src PATH] [--out benchmarks/startup.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "bpttlab --help": ["-m", "bpttlab", "--help"],
    "bpttlab decay -l 0.9 -d 0.5": ["-m", "bpttlab", "decay", "-l", "0.9", "-d", "0.5"],
    "import bpttlab.store": ["-c", "import bpttlab.store"],
    "import bpttlab": ["-c", "import bpttlab"],
}


def median_seconds(args: list[str], env: dict[str, str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loads_torch(module: str, env: dict[str, str]) -> bool:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="another checkout's src folder to measure")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    lines = ["| command | median wall (s) |", "|---|---:|"]
    for name, cmd in COMMANDS.items():
        lines.append(f"| `{name}` | {median_seconds(cmd, env):.2f} |")
    lines.append("")
    lines.append(f"`import bpttlab.store` loads torch: {loads_torch('bpttlab.store', env)}")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
