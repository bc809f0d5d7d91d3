"""A ward police station's subscriber: receives its ward's alerts and snapshots."""
