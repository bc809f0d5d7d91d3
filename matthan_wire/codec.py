"""The one place payloads become bytes and bytes become payloads."""

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from matthan_wire.messages import message

MAX_PAYLOAD_BYTES = 256 * 1024

M = TypeVar("M", bound=BaseModel)


class WireError(ValueError):
    """A topic or payload that does not follow the contract."""


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(model: type[M], data: bytes | str) -> M:
    """Validate a JSON payload against its model; every failure is a WireError with a reason."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise WireError(f"{model.__name__}: payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise WireError(f"{model.__name__}: {describe(exc)}") from None


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A short, single-line account of what was wrong, for logs and counters."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {message(err)}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def canonical(data: bytes) -> str:
    """Stable text of a JSON payload, for comparisons in tests and logs."""
    return json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"))
