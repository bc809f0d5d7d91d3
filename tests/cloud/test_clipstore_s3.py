"""The clip store on S3-compatible storage: moto's S3 server on a free loopback port, real boto3,
real HTTP upload through the app, ranges served back from the bucket."""

import hashlib
import os
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.cloud.conftest import add_device, add_user, bearer, running
from tests.support.net import free_port


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_upload_lands_in_the_bucket_and_ranges_come_back(
    make_settings, sqlite_url, s3_endpoint, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="matthan-clips")
    settings = make_settings(sqlite_url).model_copy(
        update={
            "clips": "s3://matthan-clips/q1",
            "s3_endpoint_url": s3_endpoint,
            "staging_dir": str(tmp_path / "staging"),
        }
    )
    with running(settings) as cloud:
        token = add_device(cloud, "dev-a", "ben-nghe")
        clip = os.urandom(200_000)
        common = {
            **bearer(token),
            "Upload-Length": str(len(clip)),
            "Upload-Sha256": hashlib.sha256(clip).hexdigest(),
        }
        url = "/api/v1/media/dev-a-0001/clip"
        assert (
            cloud.patch(url, content=clip[:50_000], headers={**common, "Upload-Offset": "0"}).status_code
            == 204
        )
        r = cloud.patch(url, content=clip[50_000:], headers={**common, "Upload-Offset": "50000"})
        assert r.status_code == 201

        obj = s3.get_object(Bucket="matthan-clips", Key="q1/dev-a/dev-a-0001/clip.mp4")
        assert obj["Body"].read() == clip and obj["ContentType"] == "video/mp4"
        assert not list((tmp_path / "staging").glob("*.part"))  # the staged partial is gone

        op = add_user(cloud, "op", "operator")
        whole = cloud.get(url, headers=bearer(op))
        assert whole.status_code == 200 and whole.content == clip
        part = cloud.get(url, headers={**bearer(op), "Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == clip[100:300]
        assert part.headers["Content-Range"] == f"bytes 100-299/{len(clip)}"
        tail = cloud.get(url, headers={**bearer(op), "Range": "bytes=-10"})
        assert tail.content == clip[-10:]
        assert cloud.get(url, headers={**bearer(op), "Range": "bytes=999999-"}).status_code == 416
