"""`matthan assets fetch`: place the models and sample clips, verified by SHA-256."""

import argparse
from pathlib import Path

from matthan import assets
from matthan.i18n import _


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("assets", help="fetch the pretrained models and sample footage")
    asub = p.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    f = asub.add_parser("fetch", help="fetch and verify every asset (mirror folder first, else upstream)")
    f.add_argument("--dest", type=Path, default=None, help=f"target folder (default {assets.default_dir()})")
    f.add_argument(
        "--mirror", type=Path, default=None, help="local mirror folder (env MATTHAN_ASSETS_MIRROR)"
    )
    f.set_defaults(handler=_fetch)
    ls = asub.add_parser("list", help="list the assets and whether they are present and verified")
    ls.add_argument(
        "--dest", type=Path, default=None, help=f"folder to look in (default {assets.default_dir()})"
    )
    ls.set_defaults(handler=_list)


def _fetch(args: argparse.Namespace) -> int:
    for path, how in assets.fetch(args.dest, args.mirror):
        print(f"{how:>8}  {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    dest = args.dest or assets.default_dir()
    print(_("assets in %(folder)s", folder=str(dest)))
    for a in assets.ASSETS:
        state = "ok" if assets.verified(dest / a.path, a.sha256) else "missing"
        print(f"{state:>8}  {a.path}  {a.size} bytes")
    return 0
