"""Who is who on the broker: the certificate common names (= MQTT user names) of the cloud and the
ward stations, and the commissioning check's topic. Device ids are plain ids ([a-z0-9-]); names
with a colon can never be device ids, so a device can never be enrolled under these names.
"""

CLOUD_USER = "cloud:ingest"

# Outside matthan/v1 on purpose: no contract consumer subscribes here. The commissioning check
# publishes to it and reads it back with the device's own certificate.
CHECK_PREFIX = "matthan/commissioning"


def station_user(ward: str) -> str:
    return f"station:{ward}"


def check_topic(ward: str, device: str) -> str:
    return f"{CHECK_PREFIX}/{ward}/{device}"
