"""The `storage.s3` and `redis` sections of a Configuration, and the flags that override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config.flags import parse_serve
from registry.config.settings import ConfigError
from registry.coord.redis_options import RedisSettings
from registry.storage.s3_options import S3Settings

HEAD = "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: c}\n"


def _parse(
    tmp_path: Path, spec: str, *flags: str
) -> tuple[S3Settings | None, RedisSettings | None]:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "c.yaml").write_text(HEAD + "spec:\n" + spec)
    settings = parse_serve(["-adminpwd", "pw", "-cfgdir", str(cfg), *flags], environ={})
    return settings.s3, settings.redis


def test_every_s3_and_redis_field(tmp_path: Path) -> None:
    s3, redis = _parse(
        tmp_path,
        """
  storage:
    s3:
      bucket: images
      region: eu-west-1
      endpoint: http://minio:9000
      prefix: registry
      pathStyle: true
      accessKey: AKIA
      secretKey: hidden
      sse: aws:kms
      sseKmsKeyId: key-1
      storageClass: STANDARD_IA
      connectTimeoutSeconds: 2
      readTimeoutSeconds: 30.5
      maxAttempts: 5
      requestTimeoutSeconds: 4
      maxConnections: 16
      redirect: true
      redirectSeconds: 600
      publicEndpoint: https://s3.example.com
  redis:
    url: redis://redis:6379/2
    lockLeaseSeconds: 20
    maxConnections: 8
    timeoutSeconds: 1.5
    keyPrefix: "team-a:"
""",
    )
    assert s3 == S3Settings(
        bucket="images",
        region="eu-west-1",
        endpoint_url="http://minio:9000",
        prefix="registry",
        path_style=True,
        access_key="AKIA",
        secret_key="hidden",
        sse="aws:kms",
        sse_kms_key_id="key-1",
        storage_class="STANDARD_IA",
        connect_timeout=2.0,
        read_timeout=30.5,
        max_attempts=5,
        request_timeout=4.0,
        max_connections=16,
        redirect=True,
        redirect_seconds=600,
        public_endpoint="https://s3.example.com",
    )
    assert redis == RedisSettings(
        url="redis://redis:6379/2",
        lock_lease_seconds=20.0,
        max_connections=8,
        timeout_seconds=1.5,
        key_prefix="team-a:",
    )
    assert "hidden" not in repr(s3) and "redis://" not in repr(redis)


def test_flags_override_the_configuration(tmp_path: Path) -> None:
    s3, redis = _parse(
        tmp_path,
        "  storage: {s3: {bucket: a, maxAttempts: 2}}\n  redis: {url: 'redis://one/0'}\n",
        "-s3bucket", "b", "-s3pathstyle", "-redisurl", "redis://two/1",
    )  # fmt: skip
    assert s3 is not None and (s3.bucket, s3.path_style, s3.max_attempts) == ("b", True, 2)
    assert redis is not None and redis.url == "redis://two/1"


def test_defaults_without_sections(tmp_path: Path) -> None:
    assert _parse(tmp_path, "  storage: {}\n") == (None, None)
    s3, redis = _parse(tmp_path, "  redis: {timeoutSeconds: 3}\n", "-s3bucket", "b")
    assert s3 == S3Settings(bucket="b")
    assert s3.redirect is False  # off unless asked for
    assert redis is None  # settings without a URL: no Redis


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "storage: {s3: {bucket: b, colour: red}}",
            "spec.storage.s3.colour: unknown field (expected one of: bucket, region,",
        ),
        (
            "storage: {s3: {bucket: b, bucekt: b}}",
            "spec.storage.s3.bucekt: unknown field (did you mean 'bucket'?)",
        ),
        ("storage: {s4: {bucket: b}}", "spec.storage.s4: unknown field (expected one of: s3)"),
        (
            "storage: {s3: {bucket: b, maxAttempts: '3'}}",
            "spec.storage.s3.maxAttempts: expected an integer, got a string",
        ),
        (
            "storage: {s3: {bucket: b, maxAttempts: true}}",
            "spec.storage.s3.maxAttempts: expected an integer, got a boolean",
        ),
        (
            "storage: {s3: {bucket: b, maxAttempts: 0}}",
            "spec.storage.s3.maxAttempts: expected a value from 1 to 20",
        ),
        (
            "storage: {s3: {bucket: b, redirect: 'yes'}}",
            "spec.storage.s3.redirect: expected a boolean, got a string",
        ),
        (
            "storage: {s3: {bucket: b, redirectSeconds: 10}}",
            "spec.storage.s3.redirectSeconds: expected a value from 60 to 604800",
        ),
        (
            "storage: {s3: {bucket: b, readTimeoutSeconds: 0}}",
            "spec.storage.s3.readTimeoutSeconds: expected a value from 0.1 to 3600",
        ),
        (
            "storage: {s3: {bucket: b, requestTimeoutSeconds: 0}}",
            "spec.storage.s3.requestTimeoutSeconds: expected a value from 0.1 to 3600",
        ),
        ("storage: {s3: [bucket]}", "spec.storage.s3: expected a mapping, got a list"),
        (
            "redis: {url: 'redis://r/0', lockLeaseSeconds: 0}",
            "spec.redis.lockLeaseSeconds: expected a value from 1 to 3600",
        ),
        (
            "redis: {url: 'redis://r/0', maxConnections: 2.5}",
            "spec.redis.maxConnections: expected an integer, got a number",
        ),
        ("redis: {url: 5}", "spec.redis.url: expected a string, got an integer"),
        (
            "redis: {url: 'redis://r/0', password: x}",
            "spec.redis.password: unknown field (expected one of: url, lockLeaseSeconds,",
        ),
        ("metrics: {enabled: 'no'}", "spec.metrics.enabled: expected a boolean, got a string"),
    ],
)
def test_bad_fields_name_their_file_and_document(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _parse(tmp_path, f"  {spec}\n")
    where = f'{tmp_path / "cfg" / "c.yaml"}, document 1 (Configuration "c"): '
    assert str(error.value).startswith(where + message)


def test_a_secret_of_the_wrong_type_is_not_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _parse(tmp_path, "  storage: {s3: {bucket: b, secretKey: 123456789}}\n")
    assert "spec.storage.s3.secretKey: expected a string, got an integer" in str(error.value)
    assert "123456789" not in str(error.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("storage: {s3: {region: x}}", "S3 storage needs a bucket"),
        ("redis: {url: 'http://r/0'}", "the Redis URL must start with"),
    ],
)
def test_incomplete_sections_are_config_errors(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(tmp_path, f"  {spec}\n")
