"""argparse's own texts — "usage:", "the following arguments are required", "invalid choice" — in the
process's language (matthan --lang, the locale).

argparse looks each of its texts up at the moment it uses it, through the `_` its module imported
from gettext; Python ships no catalogue for them. `speak_our_language()` points that name at our
catalogues, for the texts listed here (those of Python 3.11's argparse a user can meet; a text not
listed passes through unchanged, as gettext would leave it). Plural texts ("expected %s
arguments") stay English.
"""

import argparse

from matthan import i18n
from matthan.i18n import N_

INVALID_CHOICE = N_("invalid choice: %(value)r (choose from %(choices)s)")
TEXTS = frozenset(
    {
        N_("usage: "),
        N_("positional arguments"),
        N_("options"),
        N_("show this help message and exit"),
        N_("the following arguments are required: %s"),
        N_("unrecognized arguments: %s"),
        N_("argument %(argument_name)s: %(message)s"),
        INVALID_CHOICE,
        N_("invalid %(type)s value: %(value)r"),
        N_("expected one argument"),
        N_("expected at most one argument"),
        N_("expected at least one argument"),
        N_("ambiguous option: %(option)s could match %(matches)s"),
        N_("one of the arguments %s is required"),
        N_("not allowed with argument %s"),
        N_("ignored explicit argument %r"),
        N_("can't open '%(filename)s': %(error)s"),
    }
)


def _gettext(text: str) -> str:
    # No parameters here: argparse fills the placeholders into the text it gets back.
    return i18n.translations(i18n.language()).gettext(text) if text in TEXTS else text


def speak_our_language() -> None:
    """From now on argparse's texts follow i18n.language() (read at each use)."""
    setattr(argparse, "_", _gettext)  # noqa: B010 — argparse's own lookup name, not an attribute of ours
