"""The registry's broker tests share the technician tests' CA and secure-broker fixtures."""

from tests.provisioning.conftest import ca_dir, secure_broker

__all__ = ["ca_dir", "secure_broker"]
