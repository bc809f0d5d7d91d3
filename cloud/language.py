"""Which language the reader of an API answer reads: the signed-in user's own setting (cookie
session or API key; set on request.state.lang when the caller is resolved), else the language
the client asks for (Accept-Language, when it names one we have), else — for a device, whose
answers end up in its English logs — English, else the deployment's (Settings.language;
Vietnamese when that is "auto")."""

from babel import Locale, UnknownLocaleError
from fastapi import Request

from matthan import i18n


def request_language(request: Request) -> str:
    chosen = getattr(request.state, "lang", None)
    if chosen in i18n.LANGUAGES:
        return str(chosen)
    asked = accepted_language(request.headers.get("accept-language", ""))
    if asked is not None:
        return asked
    if getattr(request.state, "device", False):
        return i18n.SOURCE_LANGUAGE
    setting: str = request.app.state.settings.language
    return setting if setting in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


def accepted_language(header: str) -> str | None:
    """The best of our languages an Accept-Language header names, by its weights; None when it
    names none of them (or is empty)."""
    wanted = []
    for part in header.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if tag and tag != "*" and weight > 0:
            wanted.append((weight, tag.replace("-", "_")))
    ordered = [tag for _, tag in sorted(wanted, key=lambda w: -w[0])]
    try:
        found = Locale.negotiate(ordered, list(i18n.LANGUAGES))
    except (UnknownLocaleError, ValueError):
        return None
    return found.language if found is not None else None
