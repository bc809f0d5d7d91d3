"""Run every benchmark and write one results table: `python -m bench` (or `./dev.sh bench`).

Each benchmark is a module of this package that prints a Markdown section (a table with the
figures and the ratios measured side by side in one run). They run one after another, never
in parallel, so they do not share the two cores; the results go to bench/RESULTS.md with the
machine they came from.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCHES = [
    "pipeline",
    "decode",
    "capacity",
    "alert_latency",
    "soak",
    "recording",
    "ingest",
    "console",
    "tamper",
    "tracking",
    "escalation",
    "evidence",
    "snapshot",
]
HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"{mem_gb:.0f} GiB, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names", nargs="*", default=BENCHES, help=f"which benchmarks (default all: {BENCHES})"
    )
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}")
    sections = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, by `python -m bench`.",
        "",
    ]
    failed = []
    for name in args.names:
        print(f"== bench.{name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", f"bench.{name}"], capture_output=True, text=True)
        took = time.monotonic() - started
        sys.stderr.write(proc.stderr[-4000:])
        if proc.returncode != 0:
            failed.append(name)
            sections += [
                f"## {name}: FAILED (exit {proc.returncode})",
                "",
                "```",
                proc.stderr[-2000:],
                "```",
                "",
            ]
            continue
        sections += [proc.stdout.strip(), "", f"_(bench.{name} took {took:.0f} s)_", ""]
    args.out.write_text("\n".join(sections) + "\n")
    print("\n".join(sections))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
