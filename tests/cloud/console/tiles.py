"""A street-map tile folder made by the test, served over loopback HTTP like an operations centre's
own tile server: {z}/{x}/{y}.png over the test's district, each tile a light street grid with its
coordinates written on it (so a screenshot shows which tiles the map asked for)."""

import functools
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

# District 1 around Nguyen Hue and Da Kao, with a margin.
BOUNDS = (10.765, 106.690, 10.800, 106.712)
ZOOMS = range(13, 18)


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def make_tiles(folder: Path) -> int:
    made = 0
    for z in ZOOMS:
        x0, y0 = tile_of(BOUNDS[2], BOUNDS[1], z)
        x1, y1 = tile_of(BOUNDS[0], BOUNDS[3], z)
        for x in range(x0 - 1, x1 + 2):
            for y in range(y0 - 1, y1 + 2):
                img = Image.new("RGB", (256, 256), (242, 239, 233))
                d = ImageDraw.Draw(img)
                for k in range(0, 256, 64):
                    d.line([(k, 0), (k, 256)], fill=(255, 255, 255), width=6)
                    d.line([(0, k), (256, k)], fill=(255, 255, 255), width=6)
                d.rectangle([0, 0, 255, 255], outline=(200, 196, 188))
                d.text((8, 8), f"{z}/{x}/{y}", fill=(120, 120, 120))
                out = folder / str(z) / str(x) / f"{y}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                img.save(out)
                made += 1
    return made


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def tile_server(folder: Path) -> Iterator[str]:
    """The tile URL template of the folder, served until the block ends."""
    make_tiles(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="tiles", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
