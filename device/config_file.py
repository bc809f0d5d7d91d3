"""Reading a device configuration file: YAML in, a validated DeviceConfig out.

Errors name the field and the line of the YAML so a technician can find the mistake.
Relative paths in the file are taken relative to the file's own folder.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from device.errors import ConfigError
from matthan import assets
from matthan.i18n import Msg
from matthan_wire.config import DeviceConfig, ModelConfig
from matthan_wire.messages import message


def load_config(path: Path | str) -> DeviceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    return parse_config(text, source=str(path), base=path.parent)


def parse_config(text: str, source: str = "<config>", base: Path | None = None) -> DeviceConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with device, broker and cameras sections")
    try:
        config = DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, root, source)) from None
    return _resolve_paths(config, base) if base is not None else config


def format_errors(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {_dotted(loc)}: {message(err)}")
    return "\n".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node the error location reaches."""
    if node is None:
        return None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is not None:
            node = child
        # Parts that are not YAML keys (a union's tag) are skipped: the next part may match.
    return node.start_mark.line + 1


def _resolve_paths(config: DeviceConfig, base: Path) -> DeviceConfig:
    def rel(value: str | None) -> str | None:
        if value is None or "://" in value or value.startswith("picamera2:"):
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())

    update: dict[str, Any] = {
        "broker": config.broker.model_copy(
            update={
                "ca": rel(config.broker.ca),
                "cert": rel(config.broker.cert),
                "key": rel(config.broker.key),
            }
        ),
        "storage": config.storage.model_copy(
            update={"path": rel(config.storage.path), "cache_path": rel(config.storage.cache_path)}
        ),
        "cameras": [cam.with_sources(lambda s: _resolve_source(s, base)) for cam in config.cameras],
    }
    if config.model is not None:
        update["model"] = config.model.model_copy(
            update={"path": rel(config.model.path), "labels": rel(config.model.labels)}
        )
    return config.model_copy(update=update)


def _resolve_source(source: str, base: Path) -> str:
    # Streams, devices and the Pi camera are not files; a relative file path is.
    if "://" in source or source.startswith(("picamera2:", "/dev/")) or source.isdigit():
        return source
    p = Path(source).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def model_of(config: DeviceConfig) -> ModelConfig:
    """The configured model, or the default one the assets script installs, cut to the classes a
    street camera's rules count."""
    if config.model is not None:
        return config.model
    return default_model()


def default_model() -> ModelConfig:
    return ModelConfig(
        path=str(assets.path(assets.DEFAULT_MODEL)),
        labels=str(assets.path(assets.DEFAULT_LABELS)),
        classes=list(assets.STREET_CLASSES),
    )


def summary(config: DeviceConfig) -> Msg:
    zones = sum(len(c.zones) for c in config.cameras)
    lines = sum(len(c.lines) for c in config.cameras)
    rules = sum(len(z.rules) for c in config.cameras for z in c.zones)
    rules += sum(len(ln.rules) for c in config.cameras for ln in c.lines)
    return Msg(
        "device %(device)s (ward %(ward)s): %(cameras)d camera(s), %(zones)d zone(s), %(lines)d line(s), "
        "%(rules)d rule(s)",
        device=config.device.id,
        ward=config.device.ward,
        cameras=len(config.cameras),
        zones=zones,
        lines=lines,
        rules=rules,
    )
