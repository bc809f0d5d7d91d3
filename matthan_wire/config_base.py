"""What every model of the device configuration shares: strict (unknown fields and inf/NaN refused,
every list and number bounded, since a desired config arrives over MQTT like any payload), bounded
durations, titles people read, and the omission of fields added within v1 while they are empty.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Durations in a config (cooldowns, debounces, intervals): a week is already absurd.
MAX_SECONDS = 7 * 86400.0


class Strict(BaseModel):
    # A desired config arrives over MQTT like any payload: every list and number is bounded, and
    # inf/NaN (1e400 parses as inf) are refused.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def absent(value: object) -> bool:
    """Fields added within v1 are left out when empty, so older strict readers never see them."""
    return value is None


# A name people read (any Unicode, e.g. Vietnamese "vỉa hè cửa phường"), beside the ASCII id.
Title = Annotated[str, Field(min_length=1, max_length=200)]
