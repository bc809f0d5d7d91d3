"""The base of every error a user can act on.

Each part (device, cloud, provisioning, ward, assets) has one exception type deriving from
UserError and translates its failures into it at its boundary; the CLI prints the message as
one line and exits non-zero, with no traceback. The message is a `Msg` (or an `N_`-marked text)
so that whoever shows it — the CLI, the cloud's exception handler — translates it for its reader.
"""

from matthan.i18n import Msg, translate


class UserError(Exception):
    exit_code = 1

    def message(self, lang: str) -> str:
        """The message in `lang`; str(error) stays the English text (for logs)."""
        text = self.args[0] if self.args else ""
        if isinstance(text, Msg):
            return text.translated(lang)
        return translate(lang, str(text))


class NotBuiltError(UserError):
    exit_code = 2
