"""The cloud service's one user-facing error type."""

from matthan.errors import UserError


class CloudError(UserError):
    """A cloud failure a user can act on: bad flag, unreachable database, unknown user."""
