"""matthan: street-camera network software. The `matthan` command lives in matthan.cli."""

__version__ = "0.1.0"
