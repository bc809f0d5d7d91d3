from pathlib import Path

import pytest

from device.config_file import load_config, parse_config
from device.errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"
GOOD = (CONFIGS / "good.yaml").read_text()


def test_good_config_loads_and_resolves_paths() -> None:
    cfg = load_config(CONFIGS / "good.yaml")
    assert cfg.device.id == "q1-rex-01"
    assert cfg.cameras[0].source == str((CONFIGS / "clips/vtest.mp4").resolve())
    assert cfg.storage.path == str((CONFIGS / "data").resolve())
    assert cfg.cameras[0].zones[0].rules[0].category == "security_order"


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("type: crowd", "type: riot", r":15: cameras\[0\]\.zones\[0\]\.rules\[0\].*unknown rule type 'riot'"),
        (
            "[[0.05, 0.45], [0.95, 0.45], [0.95, 1.0], [0.05, 1.0]]",
            "[[0.05, 0.45], [0.95, 0.45]]",
            r":13: cameras\[0\]\.zones\[0\]\.polygon: .*at least 3",
        ),
        (
            "[[0.2, 0.6], [0.8, 0.6]]",
            "[[0.2, 0.6], [1.8, 0.6]]",
            r":19: cameras\[0\]\.lines\[0\]\.points.*less than or equal to 1",
        ),
        ("id: q1-rex-01", "id: Q1_REX", r":2: device\.id"),
        ("detect: {fps: 5}", "detect: {fps: 5, fsp: 3}", r":10: cameras\[0\]\.detect\.fsp: unknown field"),
        ("min_count: 6, ", "", r"min_count: Field required"),
        ("direction: down", "direction: north", r"direction"),
    ],
)
def test_bad_config_names_field_and_line(old: str, new: str, expect: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=expect):
        parse_config(GOOD.replace(old, new, 1), source="c.yaml")


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: invalid YAML"):
        parse_config("device: {id: x\ncameras: [", source="c.yaml")


def test_zone_without_area_is_refused() -> None:
    flat = GOOD.replace(
        "[[0.05, 0.45], [0.95, 0.45], [0.95, 1.0], [0.05, 1.0]]", "[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]"
    )
    with pytest.raises(ConfigError, match="no area"):
        parse_config(flat)


def test_duplicate_rule_names_are_refused() -> None:
    twice = GOOD.replace(
        "- {type: loitering, labels: [person], min_duration_s: 120}",
        "- {type: crowd, labels: [person], min_count: 3}",
    )
    with pytest.raises(ConfigError, match="share the name"):
        parse_config(twice)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
