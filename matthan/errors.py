"""The base of every error a user can act on.

Each part (device, cloud, provisioning, ward, assets) has one exception type deriving from
UserError and translates its failures into it at its boundary; the CLI prints the message as
one line and exits non-zero, with no traceback.
"""


class UserError(Exception):
    exit_code = 1


class NotBuiltError(UserError):
    exit_code = 2
