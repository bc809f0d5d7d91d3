"""What a console page says when its address or form carries a value it cannot use (`?days=abc`):
the field and what it needs, in the reader's language, instead of pydantic's JSON. The JSON API
keeps FastAPI's 422 body; cloud/console/pages.py's ConsoleRoute decides which one a caller gets."""

from collections.abc import Mapping, Sequence
from typing import Any

from matthan.i18n import N_, Msg

# The console's query and form names as its pages label them; others are shown as they are.
FIELDS = {
    "days": N_("Days"),
    "ward": N_("Ward"),
    "device_id": N_("Device"),
    "since": N_("From (day)"),
    "until": N_("To (day)"),
    "ttl_hours": N_("Valid for (hours)"),
    "name": N_("User name"),
    "password": N_("Password"),
    "role": N_("Role"),
    "page": N_("Page"),
    "size": N_("Per page"),
}
# pydantic's error types, as a person would be told what to type instead.
_PLAIN = {
    "int_parsing": N_("a whole number"),
    "int_type": N_("a whole number"),
    "int_from_float": N_("a whole number"),
    "float_parsing": N_("a number"),
    "float_type": N_("a number"),
    "bool_parsing": N_("yes or no"),
    "datetime_parsing": N_("a date and time"),
    "datetime_from_date_parsing": N_("a date and time"),
    "date_parsing": N_("a date"),
    "date_from_datetime_parsing": N_("a date"),
    "missing": N_("a value (it is required)"),
    "string_pattern_mismatch": N_("letters, digits and '-' only"),
    "literal_error": N_("one of the offered choices"),
    "enum": N_("one of the offered choices"),
}
_BOUNDS = {
    "greater_than_equal": (N_("at least %(limit)s"), "ge"),
    "greater_than": (N_("more than %(limit)s"), "gt"),
    "less_than_equal": (N_("at most %(limit)s"), "le"),
    "less_than": (N_("less than %(limit)s"), "lt"),
    "string_too_long": (N_("at most %(limit)s characters"), "max_length"),
    "string_too_short": (N_("at least %(limit)s characters"), "min_length"),
}


def invalid_message(errors: Sequence[Mapping[str, Any]]) -> Msg:
    """One sentence for the first thing wrong (a page's address rarely has two)."""
    if not errors:
        return Msg(N_("The page cannot use what the address or the form gave it."))
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body", "form")]
    code = loc[-1] if loc else "?"
    field: str | Msg = Msg(FIELDS[code]) if code in FIELDS else code
    kind = str(first.get("type", ""))
    ctx = first.get("ctx") or {}
    wanted: str | Msg
    if kind in _BOUNDS and _BOUNDS[kind][1] in ctx:
        text, key = _BOUNDS[kind]
        wanted = Msg(text, limit=ctx[key])
    else:
        wanted = _PLAIN.get(kind, N_("a valid value"))
    # A bare N_ text is not translated inside a Msg's parameters; a Msg is.
    need = wanted if isinstance(wanted, Msg) else Msg(wanted)
    return Msg(N_("“%(field)s” must be %(need)s; correct it and try again."), field=field, need=need)
