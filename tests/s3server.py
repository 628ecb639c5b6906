"""A real S3-compatible server on loopback for the cloud-storage tests (moto's server, from PyPI).

The server binds 127.0.0.1 on a free port; credentials are dummies; the bucket is created by the
test.  Clients find it through the standard AWS_ENDPOINT_URL variable (pyarrow and boto3 both read
it), which `env()` returns with the rest, for this process and for every Ray node it starts.
"""
from __future__ import annotations

import os
from contextlib import contextmanager


class S3Server:
    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        assert host == "127.0.0.1", host
        self.endpoint = f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def stop(self) -> None:
        self.server.stop()


@contextmanager
def patched_env(env: dict[str, str]):
    """Set env in this process (and in what it starts meanwhile); the old values come back after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3_env(server: S3Server):
    """The server's environment in this process, while the context lasts."""
    return patched_env(server.env())
