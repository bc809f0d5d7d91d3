"""The cloud service's one error tree.

Every failure a user can act on is a CloudError; the HTTP API translates any of them into its
`status` with the message as `detail` in one exception handler (cloud/app.py), and the CLI prints
the message as one line. Domain code raises these, never HTTPException.
"""

from matthan.errors import UserError


class CloudError(UserError):
    """A cloud failure a user can act on: bad flag, unreachable database, unknown user."""

    status = 400


class NotFound(CloudError):
    """The thing asked for does not exist (or the caller may not know it exists)."""

    status = 404


class Forbidden(CloudError):
    """The caller is known but may not do this."""

    status = 403


class Conflict(CloudError):
    """The request contradicts the state it met: already used, already enrolled, revoked."""

    status = 409


class Gone(CloudError):
    """It existed and ran out: an expired claim token."""

    status = 410


class Invalid(CloudError):
    """Well-formed but unusable input: a bad CSV row, a config the device would refuse."""

    status = 422


class Unavailable(CloudError):
    """This server is not set up for it (no CA, no broker URL) or a part it needs is down."""

    status = 503
