"""The one error type of the provisioning tools."""

from matthan.errors import UserError


class ProvisionError(UserError):
    """A provisioning step a technician can fix: a missing CA, a refused token, an unreachable broker."""
