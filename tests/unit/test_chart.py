"""charts/ciclo, dist/install.yaml and the Dockerfile, checked without a cluster: helm lint,
the values schema, what the templates render, and that every generated file is current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ciclo.config import DEFAULT_IMAGE, labels_from_json

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ciclo"
HELM = Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo")) / "bin" / "helm"
Manifest = dict[str, Any]
KOPF_PEERING = "clusterkopfpeerings.kopf.dev.yaml"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM.exists(), f"{HELM} is missing: run `make tools`"
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=check, cwd=ROOT, timeout=60
    )


def render(*sets: str, tests: bool = False) -> list[Manifest]:
    args = ["template", "ciclo", str(CHART), "--namespace", "ciclo-system"]
    for s in sets:
        args += ["--set", s]
    if not tests:
        args.append("--skip-tests")
    return [m for m in yaml.safe_load_all(helm(*args).stdout) if m]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def test_helm_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def test_chart_crds_are_the_generated_ones() -> None:
    top = sorted((ROOT / "crds").glob("*.yaml"))
    # and kopf's peering CRD, which ciclo.api does not generate
    chart = sorted(p for p in (CHART / "crds").glob("*.yaml") if p.name != KOPF_PEERING)
    assert [p.name for p in chart] == [p.name for p in top]
    assert (CHART / "crds" / KOPF_PEERING).exists()
    for a, b in zip(top, chart, strict=True):
        assert a.read_text() == b.read_text(), f"{b} differs from {a}: run `make crds`"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicaCount=two", "at '/replicaCount': got string, want integer"),
        ("metrics.port=70000", "at '/metrics/port'"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("serviceMonitor.intervall=10s", "additional properties 'intervall' not allowed"),
        ("prometheusOperatorLabels.release=null", "at '/prometheusOperatorLabels/release'"),
    ],
)
def test_schema_rejects_bad_values(value: str, message: str) -> None:
    out = helm("template", "x", str(CHART), "--set", value, check=False)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert message in out.stderr, out.stderr


def test_every_value_is_in_the_schema_and_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    readme = (CHART / "README.md").read_text()
    for key in values:
        assert f"`{key}" in readme, f"{key} has no `# --` comment in values.yaml"


def test_readme_is_generated_from_values() -> None:
    out = subprocess.run(
        [sys.executable, str(CHART / "hack" / "readme.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout


def test_dist_install_yaml_is_current() -> None:
    env = {**os.environ, "HELM": str(HELM)}
    out = subprocess.run(
        ["bash", str(ROOT / "dist" / "generate.sh")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert (ROOT / "dist" / "install.yaml").read_text() == out.stdout, "run `make dist`"


def test_default_image_is_the_operators_default() -> None:
    """One place for the image name: the chart's repository + appVersion is what the operator
    runs serving pods with when nothing overrides it, and the package's version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{chart['appVersion']}" == DEFAULT_IMAGE
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject
    deploy = of_kind(render(), "Deployment")[0]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == DEFAULT_IMAGE
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CICLO_RUNTIME_IMAGE"] == DEFAULT_IMAGE


def test_prometheus_operator_labels_reach_the_operator() -> None:
    def env(*sets: str) -> dict[str, str | None]:
        deploy = of_kind(render(*sets), "Deployment")[0]
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert "CICLO_PROMETHEUS_OPERATOR_LABELS" not in env()
    text = env("prometheusOperatorLabels.release=kps", "prometheusOperatorLabels.team=ml")
    assert labels_from_json(text["CICLO_PROMETHEUS_OPERATOR_LABELS"] or "") == (
        ("release", "kps"),
        ("team", "ml"),
    )


def test_log_format_reaches_the_operator() -> None:
    def command(*sets: str) -> list[str]:
        deploy = of_kind(render(*sets), "Deployment")[0]
        command: list[str] = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
        return command

    assert "--log-format=text" in command()
    assert "--log-format=json" in command("logFormat=json")
    out = helm("template", "x", str(CHART), "--set", "logFormat=xml", check=False)
    assert out.returncode != 0 and "at '/logFormat'" in out.stderr


def test_grafana_dashboard_is_off_by_default_and_labelled_for_the_sidecar() -> None:
    assert of_kind(render(), "ConfigMap") == []
    (cm,) = of_kind(render("grafanaDashboard.enabled=true"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "ciclo-system"
    (text,) = cm["data"].values()
    assert json.loads(text) == json.loads((CHART / "dashboards" / "ciclo.json").read_text())
    (moved,) = of_kind(
        render(
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.namespace=monitoring",
            "grafanaDashboard.label=dashboards",
            "grafanaDashboard.labelValue=ciclo",
        ),
        "ConfigMap",
    )
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["labels"]["dashboards"] == "ciclo"


def test_service_monitor_keeps_the_namespaces_the_operator_s_metrics_name() -> None:
    (monitor,) = of_kind(render("serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_one_replica_recreates_and_more_use_peering() -> None:
    one = render()
    deploy = of_kind(one, "Deployment")[0]
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert not of_kind(one, "ClusterKopfPeering")
    three = render("replicaCount=3")
    deploy = of_kind(three, "Deployment")[0]
    assert "strategy" not in deploy["spec"]
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    peering = of_kind(three, "ClusterKopfPeering")[0]
    assert env["CICLO_PEERING"] == peering["metadata"]["name"]


def rules(role: Manifest) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def operator_roles(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ClusterRoles bound to the operator (not the reviewers' role, bound to no one)."""
    return [
        r
        for r in of_kind(manifests, "ClusterRole")
        if not r["metadata"]["name"].endswith("-reviewer")
    ]


def test_reviewing_is_granted_apart_and_signed_by_the_api_server() -> None:
    manifests = render()
    [reviewer] = [
        r for r in of_kind(manifests, "ClusterRole") if r["metadata"]["name"].endswith("-reviewer")
    ]
    granted = rules(reviewer)
    assert granted[("ciclo.dev", "reviews")] == {"get", "list", "watch", "create"}
    # Reviewers read Models and versions; they never edit them.
    assert granted[("ciclo.dev", "models")] == {"get", "list", "watch"}
    assert not any(b["roleRef"]["name"] == reviewer["metadata"]["name"]
                   for b in of_kind(manifests, "ClusterRoleBinding"))  # fmt: skip
    [policy] = [
        p
        for p in of_kind(manifests, "ValidatingAdmissionPolicy")
        if "review" in p["metadata"]["name"]
    ]
    [check] = policy["spec"]["validations"]
    assert check["expression"] == "object.spec.user == request.userInfo.username"
    [_binding] = [
        b
        for b in of_kind(manifests, "ValidatingAdmissionPolicyBinding")
        if b["spec"]["policyName"] == policy["metadata"]["name"]
    ]
    without = render("review.create=false")
    assert all(
        "review" not in p["metadata"]["name"] for p in of_kind(without, "ValidatingAdmissionPolicy")
    )


def test_cluster_wide_rbac_by_default() -> None:
    manifests = render()
    assert not of_kind(manifests, "Role")
    granted: dict[tuple[str, str], set[str]] = {}
    for role in operator_roles(manifests):
        granted.update(rules(role))
    # What ciclo.kube and kopf call, and no more.
    assert granted[("ciclo.dev", "models")] == {"get", "list", "watch", "patch"}
    assert granted[("ciclo.dev", "monitorpolicies")] == {"get", "list", "watch", "patch"}
    assert granted[("ciclo.dev", "monitorpolicies/status")] == {"get", "patch"}
    assert granted[("apps", "deployments")] == {"get", "list", "watch", "create", "patch", "delete"}
    assert granted[("", "pods")] == {"get", "list", "watch"}
    assert granted[("", "secrets")] == {"get"}
    assert granted[("", "events")] == {"create"}
    # The way in: evaluation Jobs applied, read, deleted; Reviews read.
    # evaluation Jobs (the way in) and training Jobs, whose progress is watched
    assert granted[("batch", "jobs")] == {"get", "list", "watch", "create", "patch", "delete"}
    assert granted[("ciclo.dev", "reviews")] == {"get", "list", "watch"}
    # ciclo.controllers.prometheus_operator: apply (create, patch) after a get; a
    # PrometheusRule is deleted when its policy stops asking for one.
    assert granted[("monitoring.coreos.com", "podmonitors")] == {"get", "create", "patch"}
    assert granted[("monitoring.coreos.com", "prometheusrules")] == {
        "get",
        "create",
        "patch",
        "delete",
    }
    assert not any("*" in verbs for verbs in granted.values())
    assert not any(group == "*" or res == "*" for group, res in granted)


def test_watch_namespaces_limits_rbac_and_the_operator() -> None:
    manifests = render("watchNamespaces={team-a,team-b}")
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = of_kind(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for cluster_role in operator_roles(manifests):
        # only discovery is cluster-wide: no ciclo objects, pods or secrets elsewhere
        assert {g for g, _ in rules(cluster_role)} <= {"apiextensions.k8s.io", ""}
        assert ("", "secrets") not in rules(cluster_role)
    deploy = of_kind(manifests, "Deployment")[0]
    command = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
    assert [c for c in command if c.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_every_pod_runs_restricted() -> None:
    manifests = render(tests=True)
    pods = [m["spec"] for m in of_kind(manifests, "Pod")]
    pods += [m["spec"]["template"]["spec"] for m in of_kind(manifests, "Deployment")]
    assert len(pods) == 2
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True


def test_every_object_has_the_standard_labels() -> None:
    for m in render("serviceMonitor.enabled=true", "prometheusRule.enabled=true", tests=True):
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "ciclo", m["kind"]
        assert labels["app.kubernetes.io/instance"] == "ciclo"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run(
        [str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_final_stage_is_non_root_without_compilers() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert len(stages) == 3, "a build stage and a final stage"
    final = stages[-1]
    assert "build-essential" not in final and "gcc" not in final
    assert "COPY --from=build" in final
    user = [line for line in final.splitlines() if line.startswith("USER ")]
    assert user == ["USER 65532:65532"]
