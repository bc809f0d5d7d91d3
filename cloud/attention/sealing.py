"""Endpoint secrets sealed at rest: a webhook's signing secret, a gateway's token or password and
secret headers are encrypted with the cloud's endpoint key before they reach the database, and
opened only in the sender, the moment a message goes out.

A database backup, a replica or a support dump then holds no secret that lets its reader sign
webhooks as the cloud or post to the ward's Zalo OA. The key lives where the cloud's other
secrets do (the environment: MATTHAN_CLOUD_ATTENTION_ENDPOINT_KEY), not in the database.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) seals each value on its own, marked
with a prefix, so a config holds sealed and plain values side by side: endpoints saved before a
key was set keep working and are sealed when the attention worker starts with one. A changed key
goes first in the setting and the old one after it (`NEW,OLD`): values sealed with either open,
and new ones are sealed with the first. Without a key, secrets are stored as given (and the
worker says so once at start).
"""

from collections.abc import Callable, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cloud.errors import CloudError
from matthan.i18n import Msg

PREFIX = "sealed:v1:"
# A config key holding any of these words holds a secret (shown as "***", sealed at rest).
SECRET_KEYS = ("secret", "password", "token")
SECRET_HEADERS = ("authorization", "access_token")
SETTING = "MATTHAN_CLOUD_ATTENTION_ENDPOINT_KEY"


class SealError(CloudError):
    """A sealed secret that cannot be opened, or a key that is not a key."""


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_KEYS)


def map_secrets(config: dict[str, Any], change: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of an endpoint's config with `change` applied to each secret value (the keys that
    name one, and the secret headers): what the API shows as "***" and what is sealed at rest."""
    out = dict(config)
    for k, v in config.items():
        if is_secret(k):
            out[k] = change(v)
        elif k == "headers" and isinstance(v, dict):
            out[k] = {h: change(x) if h.lower() in SECRET_HEADERS else x for h, x in v.items()}
    return out


def new_key() -> str:
    return Fernet.generate_key().decode()


class Sealer:
    def __init__(self, keys: Sequence[str] = ()) -> None:
        try:
            fernets = [Fernet(k.encode()) for k in keys]
        except ValueError:
            raise SealError(
                Msg(
                    "%(setting)s: each key must be 32 url-safe base64-encoded bytes, as "
                    "`matthan cloud endpoint-key` prints",
                    setting=SETTING,
                )
            ) from None
        self._box = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_setting(cls, value: str | None) -> "Sealer":
        """Comma-separated keys, the first sealing; none (unset or empty): secrets stay as given."""
        return cls([k.strip() for k in (value or "").split(",") if k.strip()])

    @property
    def enabled(self) -> bool:
        return self._box is not None

    def seal(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config with every secret value sealed (those sealed already stay as they are)."""
        return map_secrets(config, self._seal_one)

    def open(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as it was typed, for the sender. SealError names the setting to fix."""
        return map_secrets(config, self._open_one)

    def has_plain(self, config: dict[str, Any]) -> bool:
        """Whether a secret of the config is stored as given."""
        found = False

        def note(value: Any) -> Any:
            nonlocal found
            found = found or (isinstance(value, str) and not value.startswith(PREFIX))
            return value

        map_secrets(config, note)
        return found

    def _seal_one(self, value: Any) -> Any:
        if self._box is None or not isinstance(value, str) or value.startswith(PREFIX):
            return value
        return PREFIX + self._box.encrypt(value.encode()).decode()

    def _open_one(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.startswith(PREFIX):
            return value  # stored before a key was set
        if self._box is None:
            raise SealError(
                Msg("the endpoint's secrets are sealed, but %(setting)s is not set", setting=SETTING)
            )
        try:
            return self._box.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SealError(
                Msg(
                    "the endpoint's secrets were sealed with another key than %(setting)s holds: put the "
                    "old key after the new one (NEW,OLD), or enter the secrets again",
                    setting=SETTING,
                )
            ) from None
