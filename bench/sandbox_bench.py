"""Code sandbox benchmark: the start and overhead of one execution in the sandbox
(apps/agents/sandbox.py) against the same code run directly by this Python.

    python bench/sandbox_bench.py [--runs 10]

"cold" is the first execution in this process (the page cache may already hold the
interpreter; nothing else is prepared), "warm" the median of the next --runs. Each case
runs once as a fresh `python -I -c CODE` subprocess ("direct") and once in the sandbox;
the overhead is the difference of the medians. Prints one JSON object.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.agents.sandbox import SandboxLimits, run_python  # noqa: E402

CASES = {
    "empty": "pass",
    "compute": "sum(i * i for i in range(2_000_000))",
    "numpy": "import numpy as np\nfloat(np.linalg.norm(np.random.rand(300, 300) @ np.ones(300)))",
}


def direct(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def sandboxed(code: str, limits: SandboxLimits) -> float:
    started = time.perf_counter()
    result = run_python(code, limits=limits)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"sandbox failed: {result.status} {result.error} {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    limits = SandboxLimits(wall_seconds=60, cpu_seconds=60)
    cold = sandboxed("pass", limits)
    report: dict[str, object] = {"cold_start_ms": round(cold * 1000, 1), "runs": args.runs}
    for name, code in CASES.items():
        direct_times = [direct(code) for _ in range(args.runs)]
        sandbox_times = [sandboxed(code, limits) for _ in range(args.runs)]
        d, s = statistics.median(direct_times), statistics.median(sandbox_times)
        report[name] = {
            "direct_ms": round(d * 1000, 1),
            "sandbox_ms": round(s * 1000, 1),
            "overhead_ms": round((s - d) * 1000, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
