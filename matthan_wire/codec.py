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
    if isinstance(data, str):
        if len(data) > MAX_PAYLOAD_BYTES:
            raise WireError(
                f"{model.__name__}: payload of {len(data)} characters exceeds {MAX_PAYLOAD_BYTES}"
            )
        try:
            data = data.encode()
        except UnicodeEncodeError:
            raise WireError(f"{model.__name__}: payload is not valid UTF-8 text") from None
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError(f"{model.__name__}: payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise WireError(f"{model.__name__}: {describe(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        # The models bound every value, so nothing else should arrive here; if a validator still
        # lets one through (OverflowError, RecursionError, ...), the caller's contract is one
        # error type for any input, so a consumer loop never meets a surprise.
        raise WireError(
            f"{model.__name__}: unreadable payload ({exc.__class__.__name__}: {str(exc)[:200]})"
        ) from None


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
