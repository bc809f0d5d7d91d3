"""The repository stands on its own: nothing tracked points at a folder beside it."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# Built so this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"|\bshared/(DESIGN|LESSONS)\.md|DESIGN\.md|LESSONS\.md")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if out.returncode == 0:
        return [ROOT / name for name in out.stdout.decode().split("\0") if name]
    skip = {".git", ".venv", ".assets", "test-output"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


# CI's own script may name the asset mirror its machine lays beside the clone: that is CI's
# environment (no network there), not something a person using the repository needs.
CI_ENVIRONMENT = {Path(".ci/run")}


def test_no_tracked_file_depends_on_a_folder_outside_the_repository() -> None:
    found = []
    for path in _tracked():
        if path.relative_to(ROOT) in CI_ENVIRONMENT:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_the_design_and_lessons_the_docs_cite_are_in_the_repository() -> None:
    for page in ("docs/design.md", "docs/lessons.md"):
        assert (ROOT / page).is_file(), page
    # Code cites lessons by number; every number cited exists.
    cited = set()
    for path in _tracked():
        if path.suffix in {".py", ".md", ".js"}:
            cited |= {int(n) for n in re.findall(r"lessons\.md #(\d+)", path.read_text(errors="replace"))}
    lessons = (ROOT / "docs/lessons.md").read_text()
    listed = {int(n) for n in re.findall(r"^(\d+)\. \*\*", lessons, re.M)}
    assert cited and cited <= listed, cited - listed
