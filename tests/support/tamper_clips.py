"""Real footage with tampering applied by ffmpeg filters at a known time (tests and bench.tamper).

Each clip is the source scaled to 320 px wide (the tamper check runs on a 160 px grey frame
anyway), cut to `duration` seconds (looped when the source is shorter), with one filter switched
on at `at` seconds. What each filter stands for:

- covered:   a black box over the whole frame (a bag, a hand, spray paint)
- blinded:   a flickering flood of light (a torch or a strobe held at the lens), contrast washed out
- defocused: a heavy box blur (the lens knocked out of focus, or smeared)
- moved:     the view shifted by 10 % of the width and turned 4 degrees (the camera pushed aside)
- dusk:      a day-to-dusk ramp of gamma and brightness over 30 s, about 40 times faster than a
             real dusk (the reference must follow it or not care), raising nothing
- occluder:  a bus-sized box (60 % of the width, 70 % of the height, a textured side) that pulls
             in over 5 s, stands 20 s and pulls out over 5 s: 30 s in front of the camera, raising
             nothing
"""

import subprocess
from pathlib import Path

FFMPEG = "ffmpeg"
WIDTH = 320
KINDS = ("covered", "blinded", "defocused", "moved")
BENIGN = ("dusk", "occluder")


def tamper_filter(kind: str, at: float, until: float | None = None) -> str:
    """The filter graph (after scaling to WIDTH) that applies `kind` from `at` s (until `until` s)."""
    on = f"gte(t,{at})" if until is None else f"between(t,{at},{until})"
    if kind == "none":
        return "null"
    if kind == "covered":
        return f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='{on}'"
    if kind == "blinded":
        return f"eq=brightness='0.55+0.25*sin(2*PI*t*1.7)':contrast=0.45:eval=frame:enable='{on}'"
    if kind == "defocused":
        return f"boxblur=luma_radius=8:luma_power=2:chroma_radius=8:enable='{on}'"
    if kind == "moved":
        # Crop a window that jumps by 10 % of the width at `at`, turned 4 degrees, scaled back.
        return (
            f"crop=w=iw*0.8:h=ih*0.8:x='if({on},iw*0.18,iw*0.08)':y='if({on},ih*0.12,ih*0.08)',"
            f"rotate=a='if({on},0.07,0)':fillcolor=black,scale={WIDTH}:-2"
        )
    if kind == "dusk":
        ramp = f"min(1,max(0,(t-{at})/30))"
        return f"eq=gamma='1-0.45*{ramp}':brightness='-0.22*{ramp}':contrast='1-0.35*{ramp}':eval=frame"
    if kind == "occluder":
        # x: enters from the right over 5 s, stands 20 s at 30 % of the width, leaves over 5 s.
        x = (
            f"if(lt(t,{at}),W,if(lt(t,{at + 5}),W-(W-W*0.3)*(t-{at})/5,"
            f"if(lt(t,{at + 25}),W*0.3,W*0.3+(W-W*0.3)*(t-{at + 25})/5)))"
        )
        return (
            f"[v];color=c=0xb0b8c0:s={int(WIDTH * 0.6)}x{int(WIDTH * 9 / 16 * 0.7)},"
            # A bus's side: windows (dark bands) on a light body, not a flat card.
            "drawgrid=w=24:h=22:t=6:c=0x303840,format=yuv420p[bus];"
            f"[v][bus]overlay=x='{x}':y=H*0.2:eval=frame:shortest=1"
        )
    raise ValueError(f"unknown tamper kind {kind!r}")


def make_clip(
    source: Path, out: Path, kind: str, at: float, duration: float, fps: int = 10, until: float | None = None
) -> Path:
    """Write `source` with `kind` applied from `at` s (to `until`), `duration` s long, 320 px wide."""
    graph = f"[0:v]fps={fps},scale={WIDTH}:-2,setsar=1"
    filt = tamper_filter(kind, at, until)
    graph += filt if filt.startswith("[v]") else f",{filt}"
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", str(duration),
         "-filter_complex", graph, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
         "-g", str(fps * 2), "-pix_fmt", "yuv420p", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out
