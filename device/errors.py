from matthan.errors import UserError


class DeviceError(UserError):
    """Anything on the device a technician can act on: a bad config, source, model or path."""


class ConfigError(DeviceError):
    """A configuration file that cannot be used; the message names the field and the line."""


class ModelError(DeviceError):
    """A model or label file that cannot be used."""
