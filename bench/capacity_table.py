"""The Markdown tables of `python -m bench.capacity`: one row per run, CPU per frame by thread, capacity."""

import argparse
import os
from dataclasses import dataclass, field

KINDS = ("decode", "camera", "detector", "native", "other", "ffmpeg")  # threads, by who started them
STAGES = ("motion", "detect", "track", "rules", "events", "tamper")  # the camera threads' share, by stage


@dataclass
class Row:
    scene: str
    mode: str
    n: int
    min_fps: float
    dropped: int
    cpu_pct: float
    machine_pct: float
    rss_mb: float
    ffmpeg_mb: float
    threads: int
    runs_per_s: float
    held: bool
    code: str = "this"  # which source tree ran it (--compare)
    # CPU ms per detect frame by thread kind (KINDS); empty from an older checkout's code
    per_frame_ms: dict[str, float] = field(default_factory=dict)


def report(
    args: argparse.Namespace,
    threads: int,
    rows: list[Row],
    alone: dict[str, dict[int, list[tuple[float, float]]]],  # model → layout → (before, after)
    model_of: dict[str, str],  # mode → the model (key of alone) it runs
    load: tuple[float, float],
    compare: bool,
    timing: tuple[float, float],  # detect fps, warm-up s
) -> None:
    fps, warmup = timing
    codes = list(dict.fromkeys(r.code for r in rows)) or ["this"]
    print("## Device capacity (`python -m bench.capacity`)\n")
    layouts = "; ".join(
        f"{m}, {k} × {threads // k} (interpreters × threads): {v[0][0]:.1f}/s before the sweep, "
        f"{v[1][0]:.1f}/s after, {min(v[0][1], v[1][1]):.1f} CPU ms per invoke"
        for m, by_layout in alone.items()
        for k, v in by_layout.items()
    )
    models = "; ".join(f"{mode}: {m}" for mode, m in model_of.items())
    print(
        f"N cameras in one process for {args.seconds:g} s each (after {warmup:g} s warm-up): detect on a "
        f"looped low-resolution clip at {fps:g} fps (paced 10 fps source, motion gate on), record a "
        "looped 1080p H.264 clip of the same footage by copy. CPU = this process and its ffmpeg children "
        f"over all cores; machine = every process on the box. Load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after. The default model, as each way loads it ({models}). Invoke alone "
        f"(same run, {threads} threads in all) — {layouts}; × invoke alone is against the best "
        "of these for the same model.\n"
    )
    cols = "| scene | detector | cameras | slowest camera fps | dropped | CPU % | machine % | RSS MB "
    cols += "| MB/added camera | ffmpeg USS MB | threads | detector runs/s | × invoke alone "
    cols += "| CPU ms per detector run | holds |"
    print(("| code " if compare else "") + cols)
    print(("| --- " if compare else "") + "| --- | --- |" + " ---: |" * 12 + " --- |")
    cores = os.cpu_count() or 1
    alone_ref = {m: max(rate for v in by_layout.values() for rate, _ in v) for m, by_layout in alone.items()}
    prev: dict[tuple[str, str, str], Row] = {}
    order = (args.scenes.index, args.modes.index, codes.index)
    rows = sorted(rows, key=lambda r: (order[0](r.scene), order[1](r.mode), r.n, order[2](r.code)))
    for r in rows:
        p = prev.get((r.code, r.scene, r.mode))
        # A repeated N (`--busy-n 16 16`) adds no camera.
        per = f"{(r.rss_mb - p.rss_mb) / (r.n - p.n):.1f}" if p is not None and r.n != p.n else "—"
        prev[(r.code, r.scene, r.mode)] = r
        print(
            (f"| {r.code} " if compare else "")
            + f"| {r.scene} | {r.mode} | {r.n} | {r.min_fps:.2f} | {r.dropped} | {r.cpu_pct:.0f} | "
            f"{r.machine_pct:.0f} | {r.rss_mb:.0f} | {per} | {r.ffmpeg_mb:.0f} | {r.threads} | "
            f"{r.runs_per_s:.1f} | {r.runs_per_s / alone_ref[model_of[r.mode]]:.2f} | "
            f"{f'{r.cpu_pct * cores * 10 / r.runs_per_s:.1f}' if r.runs_per_s else '—'} | "
            f"{'yes' if r.held else 'no'} |"
        )
    timed = [r for r in rows if r.per_frame_ms]
    if timed:
        print("\nCPU ms per detect frame, by thread: decode = capture threads (read + convert to BGR); "
              "camera = detect threads, of which motion gate, detect call (resize to the model, queue "
              "hand-off), tracking, rules, events, tamper check; detector = the shared interpreters; "
              "native = threads Python did not start (XNNPACK's and OpenCV's pools); other = the rest "
              "of this process; ffmpeg = the recorders.\n")  # fmt: skip
        keys = (*KINDS[:2], *STAGES, *KINDS[2:])
        names = [k if k in KINDS else f"({k})" for k in keys]
        print(
            ("| code " if compare else "")
            + "| scene | detector | cameras | "
            + " | ".join(names)
            + " | all |"
        )
        print(("| --- " if compare else "") + "| --- | --- |" + " ---: |" * (len(keys) + 2))
        for r in timed:
            ms = " | ".join(
                f"{r.per_frame_ms.get(k, float('nan')):.2f}" for k in (*KINDS[:2], *STAGES, *KINDS[2:])
            )
            print((f"| {r.code} " if compare else "") + f"| {r.scene} | {r.mode} | {r.n} | {ms} | "
                  f"{sum(r.per_frame_ms[k] for k in KINDS):.1f} |")  # fmt: skip
    print("\nCapacity (largest N that holds):\n")
    print(("| code " if compare else "") + "| scene | detector | cameras |")
    print(("| --- " if compare else "") + "| --- | --- | ---: |")
    for scene in args.scenes:
        for mode in args.modes:
            for code in codes:
                tried = [r for r in rows if r.scene == scene and r.mode == mode and r.code == code]
                if not tried and code != "this":
                    continue  # a mode the other checkout does not know
                held = [r.n for r in tried if r.held]
                best = str(max(held)) if held else f"< {min(r.n for r in tried)}" if tried else "not run"
                print((f"| {code} " if compare else "") + f"| {scene} | {mode} | {best} |")
