from matthan.errors import UserError


class WardError(UserError):
    """A ward station's mistake it can act on: a bad ward id, broker URL, TLS file or snapshot folder."""
