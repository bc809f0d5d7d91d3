"""The layering of the packages, read from the source (every import, function-local ones too).

- matthan_wire (the wire contract) imports nothing of ours.
- matthan's shared modules (errors, backoff, logs, mqtt, assets, …) import only matthan_wire; the
  command line and the demo (APP_MODULES) sit on top of everything and nothing imports them.
- ward imports only matthan_wire and matthan's shared modules.
- device and ward never import cloud; cloud never imports device, not even through another package.
- provisioning (the technician's tools) never imports cloud.
- No cycle between the top-level packages.
"""

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("matthan_wire", "matthan", "device", "cloud", "provisioning", "ward")
# The entry points: they wire every part together, so they are a layer of their own on top.
APP_MODULES = {"matthan.cli", "matthan.__main__", "matthan.demo", "matthan.demo_cli", "matthan.assets_cli"}
APP = "matthan (commands)"

ALLOWED: dict[str, set[str]] = {
    "matthan_wire": set(),
    "matthan": {"matthan_wire"},
    "ward": {"matthan_wire", "matthan"},
    "device": {"matthan_wire", "matthan"},
    "provisioning": {"matthan_wire", "matthan", "device"},
    "cloud": {"matthan_wire", "matthan", "provisioning"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, known: set[str]) -> set[str]:
    """Modules of ours that `module` imports (`from a import b` counts a.b when b is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def load_graph(root: Path) -> dict[str, set[str]]:
    files = {
        module_name(f, root): f
        for pkg in PACKAGES
        for f in (root / pkg).rglob("*.py")
        if "migrations" not in f.parts
    }
    known = set(files)
    return {name: imports_of(f.read_text(encoding="utf-8"), name, known) for name, f in files.items()}


def unit(module: str) -> str:
    return APP if module in APP_MODULES else module.split(".")[0]


def reachable(graph: dict[str, set[str]], start: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = [m for m in start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(graph.get(m, ()))
    return seen


def violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(graph.items()):
        here = unit(module)
        for target in sorted(targets):
            there = unit(target)
            if there == here:
                continue
            if there == APP:
                out.append(f"{module} imports {target}: nothing may import the command line or the demo")
            elif here != APP and there not in ALLOWED[here]:
                out.append(f"{module} imports {target}: {here} may import only {sorted(ALLOWED[here])}")
    cloud = [m for m in graph if unit(m) == "cloud"]
    for m in sorted(reachable(graph, cloud)):
        if unit(m) == "device":
            out.append(f"cloud reaches {m} through another package")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between units (top-level packages, with the commands apart), as lists of units."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            if unit(target) != unit(module):
                edges.setdefault(unit(module), set()).add(unit(target))
    found = []
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    found.append(path)
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_every_import_follows_the_layers() -> None:
    assert violations(load_graph(ROOT)) == []


def test_no_cycle_between_packages() -> None:
    assert cycles(load_graph(ROOT)) == []


@pytest.mark.parametrize(
    ("module", "line", "complaint"),
    [
        ("matthan_wire/payloads.py", "from cloud.models import Device", "matthan_wire may import only []"),
        ("ward/listener.py", "from device.outbox import Outbox", "ward may import only"),
        ("device/health.py", "import cloud.models", "device may import only"),
        ("cloud/ingest.py", "from device.events import DetectedEvent", "cloud may import only"),
        ("provisioning/enroll.py", "from cloud.db import make_engine", "provisioning may import only"),
        ("matthan/backoff.py", "from matthan.cli import main", "nothing may import the command line"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path: Path, module: str, line: str, complaint: str) -> None:
    graph = _graph_with(tmp_path, module, f"def _added() -> None:\n    {line}\n")
    assert any(complaint in v for v in violations(graph)), violations(graph)


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    # provisioning already imports device; device importing provisioning closes a loop.
    graph = _graph_with(tmp_path, "device/agent.py", "import provisioning.pki\n")
    assert ["device", "provisioning"] in cycles(graph)


def test_cloud_reaching_device_through_provisioning_is_caught(tmp_path: Path) -> None:
    graph = _graph_with(tmp_path, "provisioning/pki.py", "import device.capture\n")
    assert any("cloud reaches device.capture" in v for v in violations(graph))


def _graph_with(tmp_path: Path, module: str, extra: str) -> dict[str, set[str]]:
    """The real graph, with one module's source extended by `extra` (a copy: the tree is untouched)."""
    graph = load_graph(ROOT)
    path = ROOT / module
    name = module_name(path, ROOT)
    graph[name] = imports_of(path.read_text(encoding="utf-8") + "\n" + extra, name, set(graph))
    return graph
