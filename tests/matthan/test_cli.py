"""The command line as a user meets it: one-line reasons, no tracebacks, non-zero exits."""

import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent.parent / "device" / "configs"
GOOD = (CONFIGS / "good.yaml").read_text()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matthan", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_part() -> None:
    out = run("--help")
    assert out.returncode == 0
    for part in ("demo", "device", "cloud", "ward", "provision", "assets"):
        assert part in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["device", "--help"],
        ["device", "validate", "--help"],
        ["device", "run", "--help"],
        ["device", "detect", "--help"],
        ["cloud", "--help"],
        ["ward", "--help"],
        ["provision", "--help"],
        ["demo", "--help"],
        ["assets", "--help"],
    ],
)
def test_every_command_has_help(argv: list[str]) -> None:
    out = run(*argv)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_valid_config_prints_ok() -> None:
    out = run("--lang", "en", "device", "validate", "--config", str(CONFIGS / "good.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: device q1-rex-01")


def test_the_valid_config_line_speaks_vietnamese() -> None:
    # The same line as the technician at the roadside reads it: the counts and ids as they are.
    out = run("--lang", "vi", "device", "validate", "--config", str(CONFIGS / "good.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: thiết bị q1-rex-01 (phường "), out.stdout
    assert " camera, " in out.stdout and "quy tắc" in out.stdout and "camera(s)" not in out.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        ("device: [unclosed", "invalid YAML"),
        (GOOD.replace("type: crowd", "type: riot"), "unknown rule type 'riot'"),
        (GOOD.replace("[[0.2, 0.6], [0.8, 0.6]]", "[[0.2, 0.6]]"), "at least 2"),
        (GOOD.replace("[0.95, 0.45], [0.95, 1.0]", "[1.95, 0.45], [0.95, 1.0]"), "less than or equal to 1"),
        (
            GOOD.replace(
                "[[0.05, 0.45], [0.95, 0.45], [0.95, 1.0], [0.05, 1.0]]", "[[0.05, 0.45], [0.95, 0.45]]"
            ),
            "at least 3",
        ),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "device.yaml"
    if content is not None:
        path.write_text(content)
    out = run("device", "validate", "--config", str(path))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert reason in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stdout == ""


def test_unknown_subcommand_is_one_line() -> None:
    out = run("device", "fly")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "unknown", "suggestion"),
    [
        (["provision", "enroll", "--tokn", "x"], "--tokn", "--token"),
        (["device", "run", "--cfg", "x"], "--cfg", "--config"),
        (["device", "run", "--config", "x", "--cfg", "y"], "--cfg", "--config"),
        (["cloud", "user", "add", "--nme", "x", "--role", "admin"], "--nme", "--name"),
    ],
)
def test_a_mistyped_flag_is_named_with_the_closest_one(
    argv: list[str], unknown: str, suggestion: str
) -> None:
    out = run(*argv)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert f"unknown option {unknown} (did you mean {suggestion}?)" in line
    assert "required" not in line


def test_a_mistyped_command_suggests_the_closest_one() -> None:
    out = run("devcie", "run")
    assert out.returncode == 2 and "did you mean 'device'?" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    # The reader is gone before we write (as `| head -4` is after four lines): no traceback.
    proc = subprocess.Popen(
        [sys.executable, "-m", "matthan", "assets", "list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141
