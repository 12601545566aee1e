"""Runs every `benchmarks/bench_*.py` (each exposes `run(quick=False) -> dict`) and writes JSON results.

    python -m benchmarks.run --out benchmarks/results [--quick] [--only fractals]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).parent


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument("--quick", action="store_true", help="smaller workloads (smoke test)")
    parser.add_argument("--only", nargs="*", help="benchmark names without the bench_ prefix")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in discover() if not args.only or n.removeprefix("bench_") in args.only]
    if not names:
        parser.error(f"no benchmark matches {args.only}; "
                     f"available: {', '.join(n.removeprefix('bench_') for n in discover())}")
    summary = {"machine": platform.platform(), "processor": platform.processor(), "results": {}}
    for name in names:
        start = time.time()
        # One process per benchmark: TensorFlow and software OpenGL must never share a process.
        code = f"import json, benchmarks.{name} as b; print('RESULT' + json.dumps(b.run(quick={args.quick})))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")]
        if proc.returncode != 0 or not lines:
            print(f"benchmark {name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
            summary["results"][name] = {"error": proc.stderr[-2000:]}
            continue
        result = json.loads(lines[-1][len("RESULT"):])
        result["wall_seconds"] = round(time.time() - start, 1)
        summary["results"][name] = result
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if any("error" in r for r in summary["results"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
