"""The Helm chart (helm/simple-registry), rendered by the real Helm engine in-process.

Every rendered object is checked against Kubernetes' own API schemas (kubernetes-validate,
Kubernetes 1.30, strict: unknown fields are errors); the two custom resources of the
Prometheus Operator, which it has no schema for, are checked for shape here. The rendered
registry and GC containers are run through the registry's own flag and manifest parsing, on
the files their volumes would hold, so the chart cannot render a configuration the server
rejects. Nothing here needs a cluster: `lookup` answers empty, as in `helm template`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import registry
from registry.config.flags import parse_gc, parse_serve
from tests.deploy import values_table
from tests.deploy.chart import (
    CHART,
    CUSTOM_KINDS,
    FULLNAME,
    ROOT,
    Obj,
    Rendered,
    ci_cases,
    ci_values,
    load_chart,
    render,
    validate,
    walk_strings,
)


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    loaded = load_chart()
    yield loaded
    loaded.close()


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Values layered like several `-f` files: mappings merge, everything else is replaced."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def container(pod: Obj) -> Obj:
    containers: list[Obj] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


def secret_data(rendered: Rendered) -> dict[str, str]:
    secret = rendered.one("Secret")
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


# --- the chart's metadata and files ---------------------------------------------------------


def test_app_version_is_the_package_version() -> None:
    chart_yaml = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert chart_yaml["apiVersion"] == "v2"
    assert chart_yaml["appVersion"] == pyproject["project"]["version"] == registry.__version__


@pytest.mark.parametrize(
    ("copy", "original"),
    [
        ("files/alerts.yml", "deploy/prometheus/alerts.yml"),
        ("files/registry-dashboard.json", "deploy/grafana/registry-dashboard.json"),
    ],
)
def test_chart_copies_are_identical_to_deploy_files(copy: str, original: str) -> None:
    # Helm cannot read files outside the chart; the copies must not drift.
    assert (CHART / copy).read_bytes() == (ROOT / original).read_bytes()


def test_readme_lists_every_value_with_its_default() -> None:
    rows = values_table.rows()
    undescribed = [path for path, _, description in rows if not description]
    assert not undescribed, f"values without a comment in values.yaml: {undescribed}"
    assert {"storage.s3.bucket", "gc.schedule", "image.digest"} <= {p for p, _, _ in rows}
    readme = values_table.README.read_text()
    assert values_table.current_section(readme) == values_table.section(), (
        "helm/simple-registry/README.md is stale: run python -m tests.deploy.values_table"
    )


def test_ci_cases_are_the_documented_ones() -> None:
    assert ci_cases() == ["default", "existing-secrets", "filesystem-pvc", "s3-redis"]


# --- lint and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ci_cases())
def test_lint_passes(case: str) -> None:
    report = helm_python.lint(CHART, ci_values(case), strict=True, namespace="registry")
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; an info (no icon) is fine.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"gc": {"untagged": "yes"}}, "/gc/untagged"),
        ({"storage": {"type": "nfs"}}, "/storage/type"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"storage": {"s3": {"bukket": "x"}}}, "additional properties 'bukket' not allowed"),
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys(
    chart: helm_python.Chart, values: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert fragment in str(caught.value)
    with pytest.raises(helm_python.HelmValuesError):
        chart.render(values=values)


def test_schema_accepts_every_ci_case(chart: helm_python.Chart) -> None:
    for case in ci_cases():
        chart.validate_schema(ci_values(case))


# --- every object is a valid Kubernetes object ----------------------------------------------


def check_custom_resource(obj: Obj) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["metadata"]["name"] == FULLNAME
    if obj["kind"] == "ServiceMonitor":
        spec = obj["spec"]
        assert spec["jobLabel"] == "app.kubernetes.io/name"
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
        assert [e["port"] for e in spec["endpoints"]] == ["metrics"]
        assert spec["endpoints"][0]["path"] == "/metrics"
    else:
        groups = obj["spec"]["groups"]
        assert groups and all(g["name"] and g["rules"] for g in groups)
        for rule in (r for g in groups for r in g["rules"]):
            assert rule["alert"] and rule["expr"]


@pytest.mark.parametrize("case", ci_cases())
def test_every_object_validates_against_kubernetes_schemas(
    chart: helm_python.Chart, case: str
) -> None:
    rendered = render(ci_values(case), chart=chart)
    assert rendered.objects
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            check_custom_resource(obj)
        else:
            validate(obj)
    assert "docker login" in rendered.notes and "docker push" in rendered.notes


# --- the pods -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ci_cases())
@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_pods_run_locked_down(chart: helm_python.Chart, case: str, kind: str) -> None:
    pod = render(ci_values(case), chart=chart).pod_spec(kind)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 65532
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(pod)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(pod)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert mounts["/data"] == "data"
    for mount in container(pod)["volumeMounts"]:
        if mount["mountPath"].startswith("/etc/simple-registry/"):
            assert mount["readOnly"] is True


def test_probes_and_drain(chart: helm_python.Chart) -> None:
    pod = render({}, chart=chart).pod_spec("Deployment")
    server = container(pod)
    assert server["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    # /readyz checks its backends with 2 s timeouts.
    assert server["readinessProbe"]["timeoutSeconds"] > 2
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 5000, "metrics": 9090}
    # serve waits up to 30 s for its workers after SIGTERM, after the preStop pause.
    pause = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > 30 + pause
    assert server["resources"]["requests"]["cpu"]


def test_pods_spread_across_nodes(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("s3-redis"), chart=chart)
    (spread,) = rendered.pod_spec("Deployment")["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    labels = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert spread["labelSelector"]["matchLabels"] == labels
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    assert pdb["spec"]["maxUnavailable"] == 1


def test_image_digest_takes_precedence_over_the_tag(chart: helm_python.Chart) -> None:
    digest = "sha256:" + "ab" * 32
    plain = render({"image": {"repository": "r.example/sr"}}, chart=chart)
    assert container(plain.pod_spec("Deployment"))["image"] == "r.example/sr:0.1.0"
    pinned = render(
        {
            "image": {"repository": "r.example/sr", "tag": "9.9", "digest": digest},
            "imagePullSecrets": [{"name": "regcred"}],
        },
        chart=chart,
    )
    for kind in ("Deployment", "CronJob"):
        pod = pinned.pod_spec(kind)
        assert container(pod)["image"] == f"r.example/sr@{digest}"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]


# --- storage modes --------------------------------------------------------------------------


def test_default_is_one_pod_on_a_read_write_once_claim(chart: helm_python.Chart) -> None:
    rendered = render({}, chart=chart)
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    # A new pod could not attach the volume on another node while the old one holds it.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = rendered.one("PersistentVolumeClaim", f"{FULLNAME}-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in rendered.pod_spec("Deployment")["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-data"}
    for kind in ("HorizontalPodAutoscaler", "Ingress", "NetworkPolicy"):
        assert not rendered.all(kind)
    assert not [o for o in rendered.objects if o["kind"] in CUSTOM_KINDS]
    assert not [c for c in rendered.all("ConfigMap") if c["metadata"]["name"].endswith("dashboard")]
    config = yaml.safe_load(rendered.one("ConfigMap")["data"]["00-configuration.yaml"])
    assert config["spec"]["web"]["ui"] is False


def test_the_web_ui_is_one_value(chart: helm_python.Chart) -> None:
    rendered = render({"registry": {"ui": True}}, chart=chart)
    config = yaml.safe_load(rendered.one("ConfigMap")["data"]["00-configuration.yaml"])
    assert config["spec"]["web"]["ui"] is True


def test_gc_on_a_read_write_once_claim_runs_beside_the_registry(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("filesystem-pvc"), chart=chart)
    gc_pod = rendered.pod_spec("CronJob")
    volumes = {v["name"]: v for v in gc_pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-data"}
    (term,) = gc_pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    server_labels = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert term["labelSelector"]["matchLabels"] == server_labels
    assert (
        rendered.one("PersistentVolumeClaim", f"{FULLNAME}-data")["spec"]["storageClassName"]
        == "standard"
    )


def test_filesystem_without_persistence_uses_an_empty_dir(chart: helm_python.Chart) -> None:
    rendered = render({"storage": {"filesystem": {"persistence": {"enabled": False}}}}, chart=chart)
    for kind in ("Deployment", "CronJob"):
        volumes = {v["name"]: v for v in rendered.pod_spec(kind)["volumes"]}
        assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert not rendered.all("PersistentVolumeClaim")
    assert "affinity" not in rendered.pod_spec("CronJob")
    assert "emptyDir" in rendered.notes


def test_shared_volume_with_redis_allows_several_pods(chart: helm_python.Chart) -> None:
    rendered = render(
        {
            "replicaCount": 3,
            "storage": {"filesystem": {"persistence": {"accessMode": "ReadWriteMany"}}},
            "redis": {"url": "redis://redis:6379/0"},
        },
        chart=chart,
    )
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "affinity" not in rendered.pod_spec("CronJob")


def test_scaled_mode(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("s3-redis"), chart=chart)
    assert "replicas" not in rendered.one("Deployment")["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["spec"]["scaleTargetRef"]["name"] == FULLNAME
    assert not rendered.all("PersistentVolumeClaim")
    config = yaml.safe_load(rendered.one("ConfigMap")["data"]["00-configuration.yaml"])
    assert config["spec"]["storage"]["s3"] == {
        "bucket": "registry",
        "endpoint": "http://minio.storage.svc:9000",
        "region": "us-east-1",
        "pathStyle": True,
        "redirect": False,
    }
    assert config["spec"]["web"]["trustForwardedHeaders"] is True
    assert config["spec"]["web"]["service"] == "registry.example.com"
    assert config["spec"]["redis"] == {"lockLeaseSeconds": 30}


def test_ingress_streams_large_layers(chart: helm_python.Chart) -> None:
    values = merged(
        ci_values("s3-redis"),
        {
            "ingress": {
                "annotations": {
                    "cert-manager.io/cluster-issuer": "letsencrypt",
                    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                }
            }
        },
    )
    ingress = render(values, chart=chart).one("Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "900"
    # The user's annotations win and are kept.
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "registry-tls", "hosts": ["registry.example.com"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": FULLNAME,
        "port": {"name": "http"},
    }


# --- observability --------------------------------------------------------------------------


def test_monitoring_objects(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("s3-redis"), chart=chart)
    metrics_service = rendered.one("Service", f"{FULLNAME}-metrics")
    assert [p["name"] for p in metrics_service["spec"]["ports"]] == ["metrics"]
    # The job name the ServiceMonitor gives is this label, which the alerts match.
    job = metrics_service["metadata"]["labels"]["app.kubernetes.io/name"]
    assert re.fullmatch("simple-registry.*", job)
    assert [p["name"] for p in rendered.one("Service")["spec"]["ports"]] == ["http"]
    monitor = rendered.one("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics_service["metadata"]["labels"].items()
    assert not selector.items() <= rendered.one("Service")["metadata"]["labels"].items()
    rule = rendered.one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"RegistryGCFailed", "RegistryGCNotRunning", "RegistryNotReady"} <= alerts
    dashboard = rendered.one("ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = dashboard["data"].values()
    assert json.loads(text) == json.loads(
        (ROOT / "deploy/grafana/registry-dashboard.json").read_text()
    )


def test_network_policy(chart: helm_python.Chart) -> None:
    policy = render(ci_values("s3-redis"), chart=chart).one("NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "app.kubernetes.io/component" not in spec["podSelector"]["matchLabels"]
    api, metrics = spec["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}] and "from" not in api
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = [sorted(p["port"] for p in rule["ports"]) for rule in spec["egress"]]
    # DNS, S3 (MinIO on 9000), Redis, upstreams, the Pushgateway.
    assert egress_ports == [[53, 53], [9000], [6379], [443], [9091]]
    assert "to" not in spec["egress"][1]
    assert spec["egress"][4]["to"][0]["namespaceSelector"]


def test_network_policy_names_cidrs(chart: helm_python.Chart) -> None:
    values = merged(
        ci_values("s3-redis"),
        {
            "networkPolicy": {
                "egress": {
                    "s3": {"cidrs": ["10.1.0.0/16"], "ports": [443]},
                    "redis": {"cidrs": ["10.2.0.5/32"]},
                }
            }
        },
    )
    egress = render(values, chart=chart).one("NetworkPolicy")["spec"]["egress"]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert egress[2]["to"] == [{"ipBlock": {"cidr": "10.2.0.5/32"}}]


# --- garbage collection ---------------------------------------------------------------------


def test_gc_cronjob(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("s3-redis"), chart=chart)
    cron = rendered.one("CronJob", f"{FULLNAME}-gc")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] == 3600
    assert cron["successfulJobsHistoryLimit"] == 3 and cron["failedJobsHistoryLimit"] == 3
    job = cron["jobTemplate"]["spec"]
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]
    pod = rendered.pod_spec("CronJob")
    assert pod["restartPolicy"] == "Never"
    gc = container(pod)
    args = gc["args"]
    assert args[0] == "gc"
    assert args[args.index("-pushgateway") + 1] == "http://pushgateway.monitoring.svc:9091"
    assert "-untagged" in args
    assert gc["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    server = container(rendered.pod_spec("Deployment"))
    # The same configuration and secrets as the registry.
    assert gc["env"] == server["env"]
    assert gc["volumeMounts"] == server["volumeMounts"]
    assert pod["volumes"] == rendered.pod_spec("Deployment")["volumes"]
    assert gc["securityContext"] == server["securityContext"]


def test_gc_without_pushgateway_and_disabled(chart: helm_python.Chart) -> None:
    args = container(render({}, chart=chart).pod_spec("CronJob"))["args"]
    assert "-pushgateway" not in args and "-untagged" not in args
    assert not render({"gc": {"enabled": False}}, chart=chart).all("CronJob")


# --- secrets --------------------------------------------------------------------------------


def secret_strings(values: Mapping[str, Any]) -> set[str]:
    """The values of a case that are secret: every `ci-…` string of the case (passwords,
    keys) but the non-secret user name, and the hashes of User and Token manifests."""
    found = {s for s in walk_strings(values) if s.startswith("ci-") and s != "ci-hub-user"}
    auth = values.get("auth", {})
    found |= {u["passwordHash"] for u in auth.get("users", []) if "passwordHash" in u}
    found |= {t["valueSha256"] for t in auth.get("tokens", [])}
    return found


@pytest.mark.parametrize("case", ["s3-redis", "filesystem-pvc"])
def test_no_secret_outside_the_secret(chart: helm_python.Chart, case: str) -> None:
    values = ci_values(case)
    secrets = secret_strings(values)
    assert len(secrets) == (8 if case == "s3-redis" else 1)
    rendered = render(values, chart=chart)
    # They are in the Secret...
    in_secret = "\n".join(secret_data(rendered).values())
    assert all(s in in_secret for s in secrets)
    # ...and nowhere else: not in a ConfigMap, an argument, an environment value, NOTES.
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            continue
        text = "\n".join(walk_strings(obj))
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{obj['kind']} {obj['metadata']['name']} holds {leaked}"
    assert not [s for s in secrets if s in rendered.notes]


def test_generated_credentials(chart: helm_python.Chart) -> None:
    rendered = render({}, chart=chart)
    data = secret_data(rendered)
    assert re.fullmatch("[A-Za-z0-9]{24}", data["admin-password"])
    assert re.fullmatch("[A-Za-z0-9]{48}", data["token-secret"])
    for obj in rendered.objects:
        if obj["kind"] != "Secret":
            text = "\n".join(walk_strings(obj))
            assert data["admin-password"] not in text and data["token-secret"] not in text
    args = container(rendered.pod_spec("Deployment"))["args"]
    assert args[args.index("-adminpwdfile") + 1] == "/etc/simple-registry/secrets/admin-password"
    assert "kubectl -n registry get secret reg-simple-registry" in rendered.notes


def test_existing_secrets_are_referenced_not_copied(chart: helm_python.Chart) -> None:
    rendered = render(ci_values("existing-secrets"), chart=chart)
    assert secret_data(rendered) == {}
    server = container(rendered.pod_spec("Deployment"))
    env = {e["name"]: e for e in server["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "registry-s3",
        "key": "access-key-id",
    }
    assert env["SIMPLE_REGISTRY_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis",
        "key": "redis-password",
    }
    assert env["SIMPLE_REGISTRY_REDISURL"]["value"] == (
        "rediss://registry:$(SIMPLE_REGISTRY_REDIS_PASSWORD)@redis.internal:6380/0"
    )
    volumes = {v["name"]: v for v in rendered.pod_spec("Deployment")["volumes"]}
    sources = {
        s["secret"]["name"]: s["secret"]["items"]
        for s in volumes["secrets"]["projected"]["sources"]
    }
    assert sources == {
        "registry-admin": [{"key": "password", "path": "admin-password"}],
        "registry-token-key": [{"key": "tls.key", "path": "token-key.pem"}],
        "ghcr-credentials": [{"key": "token", "path": "upstream-0-password"}],
    }
    assert volumes["extra-manifests"]["secret"]["secretName"] == "registry-users"
    args = server["args"]
    assert args[args.index("-tokenkeyfile") + 1] == "/etc/simple-registry/secrets/token-key.pem"
    assert "-tokensecretfile" not in args


# --- checksums ------------------------------------------------------------------------------


def checksums(rendered: Rendered, kind: str) -> dict[str, str]:
    if kind == "CronJob":
        spec = rendered.one("CronJob", f"{FULLNAME}-gc")["spec"]["jobTemplate"]["spec"]
    else:
        spec = rendered.one(kind)["spec"]
    annotations: dict[str, str] = spec["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksums_are_those_of_the_rendered_configmap_and_secret(
    chart: helm_python.Chart,
) -> None:
    # Also with generated values: the Secret and its checksum see the same password.
    rendered = render({}, chart=chart)
    sums = checksums(rendered, "Deployment")
    assert sums == {
        "checksum/config": hashlib.sha256(
            rendered.template_file("configmap.yaml").encode()
        ).hexdigest(),
        "checksum/secret": hashlib.sha256(
            rendered.template_file("secret.yaml").encode()
        ).hexdigest(),
    }
    assert checksums(rendered, "CronJob") == sums


def test_checksums_change_with_the_config_and_the_secret(chart: helm_python.Chart) -> None:
    base = ci_values("s3-redis")
    before = checksums(render(base, chart=chart), "Deployment")
    assert checksums(render(base, chart=chart), "Deployment") == before
    role = {"name": "push", "resources": ["blobs"], "verbs": ["push"]}
    config_changed = merged(base, {"config": {"roles": [*base["config"]["roles"], role]}})
    after = checksums(render(config_changed, chart=chart), "Deployment")
    assert after["checksum/config"] != before["checksum/config"]
    assert after["checksum/secret"] == before["checksum/secret"]
    secret_changed = merged(base, {"auth": {"admin": {"password": "ci-another-password"}}})
    after = checksums(render(secret_changed, chart=chart), "Deployment")
    assert after["checksum/secret"] != before["checksum/secret"]
    assert after["checksum/config"] == before["checksum/config"]
    s3_changed = merged(base, {"storage": {"s3": {"secretAccessKey": "ci-rotated"}}})
    assert (
        checksums(render(s3_changed, chart=chart), "CronJob")["checksum/secret"]
        != before["checksum/secret"]
    )


# --- the server accepts what the chart renders ----------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class PodFiles:
    """What a container of the rendered pod would see: its volumes' files under `root`
    (mount path /x/y as root/x/y), its arguments and environment with those paths."""

    def __init__(
        self, rendered: Rendered, pod: Obj, root: Path, existing: Mapping[str, Mapping[str, str]]
    ) -> None:
        self.root = root
        self.secrets: dict[str, Mapping[str, str]] = {
            s["metadata"]["name"]: {
                k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()
            }
            for s in rendered.all("Secret")
        } | dict(existing)
        self.configmaps = {
            c["metadata"]["name"]: c.get("data") or {} for c in rendered.all("ConfigMap")
        }
        self.container = container(pod)
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.mounts = {m["mountPath"]: volumes[m["name"]] for m in self.container["volumeMounts"]}
        for mount_path, volume in self.mounts.items():
            self._fill(self.local(mount_path), volume)

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def relocate(self, text: str) -> str:
        for mount_path in sorted(self.mounts, key=len, reverse=True):
            if mount_path.startswith("/etc/"):
                text = text.replace(mount_path + "/", str(self.local(mount_path)) + "/")
        return text

    def _files(
        self, name: str, items: list[Obj] | None, data: Mapping[str, str]
    ) -> Iterator[tuple[str, str]]:
        if items is None:
            yield from data.items()
        for item in items or []:
            assert item["key"] in data, f"{name} has no key {item['key']}"
            yield item["path"], data[item["key"]]

    def _fill(self, folder: Path, volume: Obj) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sources: list[tuple[str, list[Obj] | None, Mapping[str, str]]] = []
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            sources.append((name, volume["configMap"].get("items"), self.configmaps[name]))
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            sources.append((name, volume["secret"].get("items"), self.secrets[name]))
        for source in volume.get("projected", {}).get("sources", []):
            name = source["secret"]["name"]
            sources.append((name, source["secret"].get("items"), self.secrets[name]))
        for name, items, data in sources:
            for path, text in self._files(name, items, data):
                _write(folder / path, self.relocate(text))

    def args(self) -> list[str]:
        out = []
        for arg in self.container["args"]:
            mount = next((m for m in self.mounts if arg == m or arg.startswith(m + "/")), None)
            out.append(str(self.local(mount)) + arg.removeprefix(mount) if mount else arg)
        return out

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = re.sub(
                    r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), var["value"]
                )
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = self.secrets[ref["name"]][ref["key"]]
        return env


def existing_secrets() -> dict[str, dict[str, str]]:
    """The Secrets the existing-secrets case names, as an operator would have created them."""
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    bob = yaml.safe_dump(
        {
            "apiVersion": "simple-registry.dev/v1",
            "kind": "User",
            "metadata": {"name": "bob"},
            "spec": {"groups": ["devs"]},
        }
    )
    return {
        "registry-s3": {"access-key-id": "AKIAEXAMPLE", "secret-access-key": "s3-secret"},
        "redis": {"redis-password": "redis-pass"},
        "registry-admin": {"password": "admin-pass"},
        "registry-token-key": {"tls.key": key.decode()},
        "registry-users": {"users.yaml": bob},
        "ghcr-credentials": {"token": "ghcr-token"},
    }


@pytest.mark.parametrize("case", ci_cases())
def test_serve_accepts_the_rendered_deployment(
    chart: helm_python.Chart, case: str, tmp_path: Path
) -> None:
    values = ci_values(case)
    rendered = render(values, chart=chart)
    files = PodFiles(rendered, rendered.pod_spec("Deployment"), tmp_path, existing_secrets())
    args, env = files.args(), files.env()
    assert args[0] == "serve"
    # The registry's own parsing and checks of flags, variables and manifests.
    settings = parse_serve(args[1:], env)
    users = {u.name for u in settings.manifests.users}
    assert "admin" in users
    assert settings.token_secret is not None or settings.token_key_file is not None
    assert settings.metrics_addr == "0.0.0.0:9090"
    if case == "s3-redis":
        assert settings.s3 is not None and settings.s3.bucket == "registry"
        assert settings.redis is not None
        assert settings.redis.url == "redis://:ci-redis-password@redis-master.redis.svc:6379/0"
        assert settings.redis.lock_lease_seconds == 30
        assert users == {"admin", "alice", "anonymous"}
        assert [c.upstream.password for c in settings.manifests.caches] == ["ci-upstream-password"]
        assert settings.token_secret == b"ci-token-secret-that-is-long-enough-0123456789"
        assert settings.trust_forwarded and settings.service == "registry.example.com"
        assert settings.workers == 2
    if case == "existing-secrets":
        assert settings.redis is not None
        assert settings.redis.url == "rediss://registry:redis-pass@redis.internal:6380/0"
        assert users == {"admin", "bob"}
        assert settings.token_key_file is not None and settings.token_secret is None
        assert [c.upstream.password for c in settings.manifests.caches] == ["ghcr-token"]
    if case in ("default", "filesystem-pvc"):
        assert settings.s3 is None and settings.redis is None


@pytest.mark.parametrize("case", ci_cases())
def test_gc_accepts_the_rendered_cronjob(
    chart: helm_python.Chart, case: str, tmp_path: Path
) -> None:
    values = ci_values(case)
    rendered = render(values, chart=chart)
    files = PodFiles(rendered, rendered.pod_spec("CronJob"), tmp_path, existing_secrets())
    args = files.args()
    assert args[0] == "gc"
    settings, gc = parse_gc(args[1:], files.env())
    assert gc.grace == 3600 and gc.wait == 600
    if case == "s3-redis":
        assert settings.s3 is not None and settings.redis is not None
        assert gc.pushgateway == "http://pushgateway.monitoring.svc:9091" and gc.untagged
    if case == "filesystem-pvc":
        assert gc.dry_run and gc.verbose
        assert settings.datadir == files.local("/data")


# --- what the chart refuses -----------------------------------------------------------------

S3 = {"storage": {"type": "s3", "s3": {"bucket": "b"}}}
REDIS = {"redis": {"url": "redis://redis:6379/0"}}
RWX = {"storage": {"filesystem": {"persistence": {"accessMode": "ReadWriteMany"}}}}
HPA = {"autoscaling": {"enabled": True}}

FAILURES: list[tuple[str, dict[str, Any], str]] = [
    ("s3 without bucket", {"storage": {"type": "s3"}}, "storage.s3.bucket is empty"),
    (
        "s3 replicas without redis",
        merged(S3, {"replicaCount": 2}),
        "S3 storage with replicaCount 2 needs Redis",
    ),
    ("s3 hpa without redis", merged(S3, HPA), "S3 storage with autoscaling.enabled needs Redis"),
    (
        "rwo with replicas",
        {"replicaCount": 2},
        "filesystem storage on a ReadWriteOnce volume allows exactly one pod, but replicaCount 2",
    ),
    (
        "hpa on rwo",
        merged(REDIS, HPA),
        "on a ReadWriteOnce volume allows exactly one pod, but autoscaling.enabled",
    ),
    (
        "emptyDir with replicas",
        merged(
            {"storage": {"filesystem": {"persistence": {"enabled": False}}}}, {"replicaCount": 2}
        ),
        "filesystem storage on an emptyDir cannot have replicaCount 2",
    ),
    (
        "rwx without redis",
        merged(RWX, {"replicaCount": 2}),
        "several pods on one ReadWriteMany volume (replicaCount 2) need Redis",
    ),
    (
        "hpa without cpu request",
        merged(S3, REDIS, HPA, {"resources": {"requests": {"cpu": None}}}),
        "autoscaling on CPU needs resources.requests.cpu",
    ),
    (
        "hpa min above max",
        merged(S3, REDIS, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}),
        "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (3)",
    ),
    (
        "redis credentials in url",
        merged(S3, {"redis": {"url": "redis://:pw@redis:6379/0"}}),
        "redis.url must not hold credentials",
    ),
    ("redis url scheme", {"redis": {"url": "http://redis:6379"}}, "redis.url must start with"),
    (
        "redis password twice",
        merged(REDIS, {"redis": {"password": "x", "existingSecret": {"name": "r"}}}),
        "either as redis.password or in redis.existingSecret",
    ),
    (
        "redis password without url",
        {"redis": {"password": "x"}},
        "a Redis password is set but redis.url is empty",
    ),
    (
        "s3 half credentials",
        merged(S3, {"storage": {"s3": {"accessKeyId": "a"}}}),
        "storage.s3.accessKeyId and storage.s3.secretAccessKey go together",
    ),
    (
        "s3 credentials twice",
        merged(
            S3,
            {
                "storage": {
                    "s3": {
                        "accessKeyId": "a",
                        "secretAccessKey": "b",
                        "existingSecret": {"name": "s"},
                    }
                }
            },
        ),
        "either as storage.s3.accessKeyId/secretAccessKey or in storage.s3.existingSecret",
    ),
    ("nobody can log in", {"auth": {"admin": {"enabled": False}}}, "nobody could log in"),
    (
        "admin password twice",
        {"auth": {"admin": {"password": "p", "existingSecret": {"name": "a"}}}},
        "either as auth.admin.password or in auth.admin.existingSecret",
    ),
    (
        "secret and key",
        {"auth": {"tokenSecret": {"value": "s"}, "tokenKey": {"value": "k"}}},
        "either with auth.tokenSecret (HS256) or with auth.tokenKey",
    ),
    (
        "token secret in configmap",
        {"config": {"configuration": {"web": {"tokenSecret": "s"}}}},
        "config.configuration.web.tokenSecret",
    ),
    (
        "redis url in configmap",
        {"config": {"configuration": {"redis": {"url": "redis://r"}}}},
        "config.configuration.redis.url",
    ),
    (
        "s3 key in configmap",
        {"config": {"configuration": {"storage": {"s3": {"secretKey": "s"}}}}},
        "config.configuration.storage.s3.secretKey",
    ),
    (
        "upstream passwordFile",
        {
            "config": {
                "pullThroughCaches": [
                    {
                        "name": "hub",
                        "scopes": ["^x$"],
                        "upstream": {"url": "https://r", "passwordFile": "/p"},
                    }
                ]
            }
        },
        "config.pullThroughCaches hub: the chart mounts the upstream password itself",
    ),
    (
        "short grace period",
        {"terminationGracePeriodSeconds": 30},
        "terminationGracePeriodSeconds (30) must be above preStopSleepSeconds (5) + 30",
    ),
    (
        "ingress without hosts",
        {"ingress": {"enabled": True}},
        "ingress.enabled needs at least one host",
    ),
    (
        "servicemonitor without port",
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
        "metrics.serviceMonitor.enabled needs metrics.enabled",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_contradictions_fail_with_a_message(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    chart.validate_schema(values)  # the values are well-formed: the chart itself refuses them
    with pytest.raises(helm_python.HelmRenderError) as caught:
        chart.render(values=values, name="reg", namespace="registry")
    assert message in str(caught.value)
