"""Validation messages say what is expected in words, never as a regular expression."""

import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from matthan_wire import config, payloads
from matthan_wire.codec import describe
from matthan_wire.messages import PATTERN_WORDS, message

GOOD = Path(__file__).resolve().parent.parent / "device" / "configs" / "good.yaml"
REGEX_SIGNS = ("pattern", "^", "$", "\\", "[a-z")


def _patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _patterns(item)


def _wire_models() -> list[type[BaseModel]]:
    return [
        obj
        for module in (config, payloads)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def test_every_pattern_of_the_contract_has_words() -> None:
    used = {p for model in _wire_models() for p in _patterns(model.model_json_schema())}
    assert used, "no patterns found: the schema walk is broken"
    assert used - set(PATTERN_WORDS) == set(), "add words for these patterns in matthan_wire/messages.py"


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (config.BrokerConfig, {"url": "mqtts://broker.example.vn/x"}, "e.g. mqtts://broker.example.vn:8883"),
        (config.CloudConfig, {"url": "ftp://cloud"}, "starting with https://"),
        (config.DeviceIdentity, {"id": "Q1 Rex", "ward": "ben-nghe"}, "e.g. ben-nghe, q1-rex-01"),
    ],
)
def test_a_pattern_error_reads_as_words_with_an_example(
    model: type[BaseModel], data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    text = describe(info.value)
    assert expected in text and "should be" in text
    assert not any(sign in text for sign in REGEX_SIGNS), text


def test_an_unknown_pattern_never_shows_its_regex() -> None:
    err = {"type": "string_pattern_mismatch", "msg": "String should match pattern '^x+$'",
           "ctx": {"pattern": "^x+$"}, "loc": ("a",), "input": "y"}  # fmt: skip
    assert "^x+$" not in message(err) and message(err).startswith("should be")


def test_the_cli_says_what_a_broker_url_looks_like(tmp_path: Path) -> None:
    bad = tmp_path / "device.yaml"
    bad.write_text(GOOD.read_text().replace("url: mqtt://127.0.0.1:1883", "url: mqtt://127.0.0.1:1883/x"))
    out = subprocess.run(
        [sys.executable, "-m", "matthan", "device", "validate", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "broker.url: should be a broker address" in out.stderr and "e.g. mqtts://" in out.stderr
    assert not any(sign in out.stderr for sign in REGEX_SIGNS), out.stderr
