"""Settings: flags over environment over defaults; every mistake is one clear line."""

import pytest

from cloud.errors import CloudError
from cloud.settings import Settings


def test_flags_win_over_environment_and_defaults_fill_the_rest() -> None:
    env = {
        "MATTHAN_CLOUD_DB_URL": "postgresql://u@db/matthan",
        "MATTHAN_CLOUD_BROKER_URL": "mqtt://b:1883",
        "MATTHAN_CLOUD_HEALTH_INTERVAL_S": "10",
    }
    s = Settings.from_env(env, broker_url="mqtts://broker.q1.example:8883", clips=None)
    assert s.db_url == "postgresql://u@db/matthan"
    assert s.broker_url == "mqtts://broker.q1.example:8883"
    assert s.health_interval_s == 10.0 and s.clips == "clips" and not s.clips_is_s3
    assert Settings.from_env({"MATTHAN_CLOUD_BROKER_URL": ""}).broker_url is None
    s3 = Settings.from_env({}, clips="s3://bucket/q1", staging_dir="/tmp/stage")
    assert s3.clips_is_s3 and str(s3.clips_dir) == "/tmp/stage"
    assert Settings.from_env({}, public_url="https://cloud.q1.example").secure_cookies


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"db_url": "mysql://x"}, "database URL"),
        ({"broker_url": "tcp://x"}, "broker URL"),
        ({"port": 0}, "port"),
        ({"clips": "s3://"}, "needs a bucket"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_bad_settings_are_one_line_cloud_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(CloudError) as err:
        Settings.from_env({}, **values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_enrollment_and_the_console_clock_are_read_once_with_the_rest() -> None:
    env = {
        "MATTHAN_PROVISION_CA_DIR": "/srv/ca",
        "MATTHAN_PROVISION_BROKER_URL": "mqtts://broker.q1.example:8883",
        "MATTHAN_CONSOLE_TZ": "Asia/Bangkok",
    }
    s = Settings.from_env(env)
    assert str(s.enrollment.ca_dir) == "/srv/ca" and s.enrollment.broker_dir is None
    assert s.enrollment.broker_url == "mqtts://broker.q1.example:8883"
    assert s.console_tz == "Asia/Bangkok"
    plain = Settings.from_env({})
    assert plain.enrollment.ca_dir is None and plain.console_tz == "Asia/Ho_Chi_Minh"
    assert Settings.from_env(env, console_tz="UTC").console_tz == "UTC"
