"""`make demo`: the whole model lifecycle on one machine, told as it happens.

Each step acts as a user would (the ciclo CLI, kubectl apply) and then waits for
the cluster to show the outcome; the timeline prints what the cluster says, with
the seconds since the story began.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import joblib
import numpy as np
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import kubernetes
from ciclo.monitoring.evaluation import seconds
from demo import canary, reaction, retraining, way_in
from demo.traffic import Traffic
from localcluster import launcher, node, prometheus, store, volumes
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("CICLO_DEMO_NAMESPACE", "ciclo-demo")
OPERATOR_NAMESPACE = "ciclo-system"
MODEL = "iris"
STORE_SECRET = "iris-predictions"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
GROUP, VERSION = "ciclo.dev", "v1alpha1"
POLICY_INTERVAL = "5s"
ACCURACY_WINDOW, ACCURACY_MIN, ACCURACY_FAILURES = "30s", 0.85, 3
T = TypeVar("T")


class DemoError(RuntimeError):
    """A step did not reach its outcome: the message says which and what the cluster showed."""


@dataclass
class Step:
    title: str
    outcome: str = ""
    seconds: float = 0.0


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {text}", flush=True)

    def step(self, title: str) -> Step:
        print(f"\n== {len(self.steps) + 1}. {title}", flush=True)
        self.steps.append(Step(title))
        return self.steps[-1]

    def summary(self) -> None:
        print("\n== Summary")
        width = max(len(s.title) for s in self.steps)
        print(f"  {'step':<{width}}  {'seconds':>7}  outcome")
        for s in self.steps:
            print(f"  {s.title:<{width}}  {s.seconds:7.1f}  {s.outcome}")


def wait(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    show: Callable[[], str],
    every: float = 0.5,
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise DemoError(f"{what}: not seen within {timeout:.0f} s; the cluster shows {show()}")


class Cluster:
    """The demo's view of the cluster: read with the Python client, write as a user would."""

    def __init__(self, paths: Paths, kubeconfig: Path, claim: Path | None = None) -> None:
        """`claim`: the directory behind the PersistentVolumeClaim `models` the pods read
        (pvc://models/...), on the local cluster; elsewhere artifacts are file:// paths."""
        self.paths, self.kubeconfig, self.claim = paths, kubeconfig, claim
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.discovery = kubernetes.client.DiscoveryV1Api(api)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return launcher.kubectl(self.paths, self.kubeconfig, *args, stdin=stdin).stdout

    def uri(self, path: Path) -> str:
        """Where the pods find a file of the demo's directory."""
        if self.claim is None:
            return path.as_uri()
        return f"pvc://{volumes.CLAIM}/{path.relative_to(self.claim)}"

    def ciclo(self, *args: str) -> str:
        command = [sys.executable, "-m", "ciclo.cli.main", "--kubeconfig", str(self.kubeconfig)]
        env = dict(os.environ)
        if self.claim is not None:  # `ciclo register` reads pvc://models/... from here
            env["CICLO_PVC_ROOT"] = str(self.claim.parent)
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, env=env
        )
        if done.returncode:
            raise DemoError(f"ciclo {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def get(self, plural: str, name: str) -> dict[str, Any]:
        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
            result: dict[str, Any] = obj  # type: ignore[assignment]  # JSON, typed object
            return result
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return {}
            raise

    def model(self) -> dict[str, Any]:
        return self.get("models", MODEL)

    def version(self, v: str) -> dict[str, Any]:
        return self.get("modelversions", f"{MODEL}-{v}")

    def policy(self) -> dict[str, Any]:
        return self.get("monitorpolicies", MODEL)

    def condition(self, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        for c in obj.get("status", {}).get("conditions", []):
            if c["type"] == kind:
                return dict(c)
        return {}

    def endpoints(self) -> list[str]:
        """Ready addresses of the Model's Service: where its users' requests go."""
        try:
            slices = self.discovery.list_namespaced_endpoint_slice(
                NAMESPACE, label_selector=f"kubernetes.io/service-name={MODEL}"
            ).items
        except kubernetes.client.ApiException:
            return []
        out = []
        for s in slices:
            port = next((p.port for p in s.ports or [] if p.name == "http"), None)
            for e in s.endpoints or []:
                if e.conditions and e.conditions.ready and port:
                    out += [f"{a}:{port}" for a in e.addresses]
        return out

    def selected_version(self) -> str | None:
        try:
            svc = self.core.read_namespaced_service(MODEL, NAMESPACE)
        except kubernetes.client.ApiException:
            return None
        return (svc.spec.selector or {}).get("ciclo.dev/version")

    def warm_replicas(self, v: str) -> int:
        pods = self.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"ciclo.dev/model={MODEL},ciclo.dev/version={v}"
        ).items
        return len(
            [
                p
                for p in pods
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ]
        )


@dataclass
class Trained:
    x: np.ndarray
    y: np.ndarray
    accuracy: dict[str, float]


def train(workdir: Path) -> Trained:
    """Two versions of an iris classifier, their artifacts and baseline profiles."""
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=7, stratify=y
    )
    data = workdir / "train.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, "species"])
        writer.writerows(
            [[*row, label] for row, label in zip(x_train.tolist(), y_train, strict=True)]
        )
    accuracy = {}
    for v, c in (("v1", 1.0), ("v2", 0.3)):
        model = LogisticRegression(C=c, max_iter=1000).fit(x_train, y_train)
        accuracy[v] = float(model.score(x_test, y_test))
        joblib.dump(model, workdir / f"{v}.joblib")
        profile(workdir, v)
    return Trained(x_train, y_train, accuracy)


def profile(workdir: Path, v: str) -> Path:
    """`ciclo profile` of version v's artifact on the training rows: the baseline its drift
    is measured against (a version without one has no drift reading)."""
    out = workdir / f"{v}-profile.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ciclo.cli.main",
            "profile",
            str(workdir / "train.csv"),
            "--target",
            "species",
            "--model",
            str(workdir / f"{v}.joblib"),
            "--format",
            "sklearn",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def model_manifest(version: str, retired: bool = False, shared: bool = True) -> dict[str, Any]:
    """The demo's Model; `shared`: its pods keep predictions in the local cluster's shared
    prediction store (the Secret STORE_SECRET names it), so labels may go to any pod."""
    spec: dict[str, Any] = {
        "version": version,
        "retired": retired,
        "serving": {"replicas": 1, "warmReplicas": 1, "keepPrevious": 1, **on_real_node()},
    }
    if shared:
        store = {"secretKeyRef": {"name": STORE_SECRET, "key": "url"}}
        spec["monitoring"] = {"feedback": {"store": store}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Model",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": spec,
    }


def policy_manifest(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MonitorPolicy",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "modelRef": {"name": MODEL},
            "interval": POLICY_INTERVAL,
            "source": source,
            "rules": [
                {
                    "name": "accuracy",
                    "metric": "accuracy",
                    "window": ACCURACY_WINDOW,
                    "min": ACCURACY_MIN,
                    "minSamples": 50,
                    "failureThreshold": ACCURACY_FAILURES,
                    "action": "rollback",
                },
                {
                    "name": "input-drift",
                    "metric": "feature_drift_psi",
                    "window": "30s",
                    "max": 0.2,
                    "minSamples": 200,
                    "failureThreshold": 2,
                    "action": "alert",
                },
            ],
        },
    }


def apply(cluster: Cluster, timeline: Timeline, manifest: dict[str, Any], file: Path) -> None:
    file.write_text(yaml.safe_dump(manifest, sort_keys=False))
    timeline.say(f"$ kubectl apply --server-side -f {file.name}")
    for line in cluster.kubectl("apply", "--server-side", "-f", str(file)).splitlines():
        timeline.say(f"  {line}")


def rule_status(policy: dict[str, Any], name: str) -> dict[str, Any]:
    for r in policy.get("status", {}).get("rules", []):
        if r.get("name") == name:
            return dict(r)
    return {}


def describe(cluster: Cluster) -> str:
    model = cluster.model().get("status", {})
    conditions = {
        c["type"]: f"{c['status']} {c.get('reason', '')}" for c in model.get("conditions", [])
    }
    return json.dumps({"servingVersion": model.get("servingVersion"), "conditions": conditions})


def run(operator_mode: str) -> int:
    paths = Paths.from_env()
    workdir = paths.cache / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    if os.environ.get("CICLO_DEMO_LOCK_HELD") == "1":  # run by a test session that holds it
        return tell(paths, workdir, operator_mode)
    # the test suite holds this lock while it uses the one local cluster
    with (paths.cache / "cluster.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for the test run that is using the local cluster", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        return tell(paths, workdir, operator_mode)


def tell(paths: Paths, workdir: Path, operator_mode: str) -> int:
    timeline = Timeline()
    external = launcher.external_kubeconfig()

    step = timeline.step("Set up: the local cluster, Prometheus and ciclo")
    kubeconfig = launcher.up(paths, with_prometheus=external is None, with_store=external is None)
    files = workdir  # the operator's log and pid stay here; artifacts go on the claim
    if external is None:
        workdir = volumes.prepare(workdir / "pvc" / volumes.CLAIM)
    cluster = Cluster(paths, kubeconfig, claim=workdir if external is None else None)
    timeline.say(f"cluster ready (KUBECONFIG={kubeconfig})")
    if external is None:
        timeline.say(f"prometheus at {prometheus.url()}, scraping the serving pods")
        source: dict[str, Any] = {"type": "prometheus", "prometheus": {"url": prometheus.pod_url()}}
    else:  # no Prometheus we know of: the operator reads the serving pods' own /metrics
        source = {"type": "pods"}
    ensure_namespace(cluster, timeline)
    if cluster.claim is not None:
        # A volume whose claim went with an earlier namespace binds no new one: made anew.
        pv = volumes.volume_name(NAMESPACE)
        phase = cluster.kubectl(
            "get", "pv", pv, "--ignore-not-found", "-o=jsonpath={.status.phase}"
        )
        if phase == "Released":
            cluster.kubectl("delete", "pv", pv, "--wait")
        for obj in volumes.manifests(NAMESPACE, cluster.claim):
            cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(obj))
        timeline.say(f"PersistentVolumeClaim {volumes.CLAIM}: the real node's {cluster.claim}")
    shared = external is None
    if shared:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": STORE_SECRET, "namespace": NAMESPACE},
            "stringData": {"url": store.url(paths)},
        }
        cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(secret))
        timeline.say("shared prediction store on the bridge: labels may reach any pod")
    install_operator(cluster, timeline, operator_mode, files)
    clear_previous(cluster, timeline)
    trained = train(workdir)
    for v in ("v1", "v2"):
        out = cluster.ciclo(
            "register", cluster.uri(workdir / f"{v}.joblib"), "--model", MODEL, "--version", v,
            "--format", "sklearn", "--baseline", cluster.uri(workdir / f"{v}-profile.json"),
            "--metric", f"accuracy={trained.accuracy[v]:.3f}", "-n", NAMESPACE,
        )  # fmt: skip
        timeline.say(out.strip())
    step.outcome = "cluster, Prometheus, operator; v1 and v2 registered"
    step.seconds = time.monotonic() - timeline.start

    step = timeline.step("v1 serves; traffic and labelled feedback flow")
    t0 = time.monotonic()
    apply(cluster, timeline, model_manifest("v1", shared=shared), workdir / "model.yaml")
    apply(cluster, timeline, policy_manifest(source), workdir / "policy.yaml")
    wait("v1 Ready", lambda: cluster.condition(cluster.model(), "Ready").get("status") == "True",
         120, lambda: describe(cluster))  # fmt: skip
    timeline.say("v1 is Ready and the Service selects it")
    traffic = Traffic(trained.x, trained.y, cluster.endpoints, MODEL, through_service=shared)
    traffic.start()
    try:
        accuracy = wait(
            "live accuracy in the MonitorPolicy's status",
            lambda: rule_status(cluster.policy(), "accuracy").get("value"),
            90,
            lambda: json.dumps(cluster.policy().get("status", {})),
        )
        timeline.say(f"{traffic.counts.requests} requests, {traffic.counts.labels} labels so far")
        timeline.say("$ ciclo status")
        for line in cluster.ciclo("status", "-n", NAMESPACE).splitlines():
            timeline.say(f"  {line}")
        step.outcome = f"v1 Ready, live accuracy {float(accuracy):.2f}"
        step.seconds = time.monotonic() - t0

        step = timeline.step("v2 is promoted (spec.version: v2, by kubectl apply); v1 stays warm")
        t0 = time.monotonic()
        apply(cluster, timeline, model_manifest("v2", shared=shared), workdir / "model.yaml")
        wait("the Service selecting v2", lambda: cluster.selected_version() == "v2", 120,
             lambda: describe(cluster))  # fmt: skip
        warm = cluster.warm_replicas("v1")
        timeline.say(f"v2 serves; v1 keeps {warm} warm pod(s) for an instant rollback")
        step.outcome = f"v2 serving, v1 warm ({warm} pod)"
        step.seconds = time.monotonic() - t0

        step = timeline.step("v2's quality falls: 40% of its labels disagree")
        t0, wrong_since = time.monotonic(), time.time()
        traffic.knobs.wrong_labels["v2"] = 0.4
        timeline.say("feedback for v2 now says 40% of its predictions were wrong")
        wait("the Service selecting v1 again", lambda: cluster.selected_version() == "v1", 180,
             lambda: describe(cluster), every=0.1)  # fmt: skip
        took, switched = time.monotonic() - t0, time.time()
        timeline.say(f"rolled back to v1 by the operator after {took:.1f} s")
        v2 = wait(
            "v2 marked RolledBack",
            lambda: (v := cluster.version("v2"))["status"].get("phase") == "RolledBack" and v,
            30,
            lambda: describe(cluster),
        )
        record = v2.get("status", {}).get("rolledBack", {})
        timeline.say(f"v2 is {v2.get('status', {}).get('phase')}: {record.get('message', '')}")
        model = cluster.model()
        degraded = cluster.condition(model, "Degraded")
        timeline.say(
            f"Model: spec.version {model['spec']['version']}, servingVersion "
            f"{model['status'].get('servingVersion')}, Degraded={degraded.get('status')} "
            f"({degraded.get('reason')})"
        )
        step.outcome = f"rolled back to v1 in {took:.1f} s"
        if external is None:
            points = reaction.accuracy_points(
                prometheus.url(), NAMESPACE, MODEL, "v2", ACCURACY_WINDOW, wrong_since, switched
            )
            crossed = reaction.first_below(points, ACCURACY_MIN)
            if crossed is not None:
                target = seconds(POLICY_INTERVAL) * ACCURACY_FAILURES + 2
                timeline.say(
                    f"reaction time: {switched - crossed:.1f} s from the first scrape with "
                    f"accuracy under {ACCURACY_MIN} to the Service selecting v1 (target: "
                    f"interval x failureThreshold + 2 s = {target:.0f} s)"
                )
                step.outcome += f" (reaction {switched - crossed:.1f} s)"
        step.seconds = took

        step = timeline.step("the input distribution shifts: sepal_length +1.5 standard deviations")
        t0 = time.monotonic()
        traffic.knobs.shift = (0, 1.5 * float(trained.x[:, 0].std()))
        alert = wait(
            "the drift rule alerting",
            lambda: (
                rule_status(cluster.policy(), "input-drift").get("state") == "Breaching"
                and any(a.get("rule") == "input-drift" for a in actions(cluster.policy()))
                and rule_status(cluster.policy(), "input-drift")
            ),
            120,
            lambda: json.dumps(cluster.policy().get("status", {})),
        )
        took = time.monotonic() - t0
        timeline.say(
            f"drift alert after {took:.1f} s: PSI {float(alert.get('value', 0)):.2f} > 0.2"
        )
        serving = cluster.model()["status"].get("servingVersion")
        timeline.say(f"nothing rolled back: {serving} still serves")
        step.outcome = f"drift alert in {took:.1f} s, {serving} still serving"
        step.seconds = took

        way_in.chapter(cluster, timeline, workdir, trained, traffic, shared)
        drift = traffic.knobs.shift
        traffic.knobs.shift = None  # the inputs come back: the canaries meet honest traffic
        canary.chapter(
            cluster, timeline, workdir, traffic, trained.x, trained.y,
            lambda v: model_manifest(v, shared=shared), apply, wait, describe,
        )  # fmt: skip
        if external is None:  # training Jobs write to the local cluster's claim
            traffic.knobs.shift = drift  # the drift returns, and now the policy retrains
            retraining.chapter(cluster, timeline, workdir)
    finally:
        traffic.stop()

    step = timeline.step("the model is retired; its versions stay in the registry")
    t0 = time.monotonic()
    retired = model_manifest("v6", retired=True, shared=shared)
    apply(cluster, timeline, retired, workdir / "model.yaml")
    wait("the Model retired",
         lambda: cluster.condition(cluster.model(), "Ready").get("reason") == "Retired", 60,
         lambda: describe(cluster))  # fmt: skip
    timeline.say(f"$ kubectl get modelversions -n {NAMESPACE}")
    for line in cluster.kubectl("get", "modelversions", "-n", NAMESPACE).splitlines():
        timeline.say(f"  {line}")
    step.outcome = "retired; every version still registered"
    step.seconds = time.monotonic() - t0

    timeline.summary()
    print(f"\nThe story took {time.monotonic() - timeline.start:.0f} s. Look around:")
    print(f"  export KUBECONFIG={kubeconfig}")
    print("  kubectl get ciclo -A            # every ciclo resource")
    print(f"  kubectl describe monitorpolicy {MODEL} -n {NAMESPACE}")
    if external is None:
        print(f"  {prometheus.url()}/api/v1/query?query=ciclo_window_accuracy   # Prometheus")
    print("  docs/: architecture.md, serving.md, monitoring.md")
    print("The cluster keeps running; `make demo-down` removes it.")
    return 0


def actions(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy.get("status", {}).get("actions", []))


def install_operator(cluster: Cluster, timeline: Timeline, mode: str, workdir: Path) -> None:
    """ciclo from its Helm chart (the default), or `ciclo run` from this checkout as a process."""
    if mode == "helm":
        values = workdir / "values.yaml"
        values.write_text(yaml.safe_dump(demo_values(), sort_keys=False))
        helm = [str(cluster.paths.binary("helm")), "--kubeconfig", str(cluster.kubeconfig)]
        command = ["upgrade", "--install", "ciclo", str(ROOT / "charts" / "ciclo")]
        command += ["-n", OPERATOR_NAMESPACE, "--create-namespace", "-f", str(values)]
        command += ["--wait", "--timeout", "180s"]
        timeline.say(f"$ helm upgrade --install ciclo charts/ciclo -n {OPERATOR_NAMESPACE} ...")
        done = subprocess.run([*helm, *command], capture_output=True, text=True, timeout=240)
        if done.returncode:
            raise DemoError(f"helm install failed: {done.stderr.strip()}")
        timeline.say("ciclo installed with its Helm chart; the operator runs in the cluster")
        return
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l",
                    "app.kubernetes.io/part-of=ciclo")  # fmt: skip
    pid = workdir / "operator.pid"
    if pid.exists() and Path(f"/proc/{pid.read_text().strip()}").exists():
        timeline.say("the operator (`ciclo run`, a local process) is already running")
        return
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    with (workdir / "operator.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ciclo.cli.main", "run", "--namespace", NAMESPACE],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid.write_text(str(proc.pid))
    timeline.say(f"the operator runs as a local process (log: {workdir / 'operator.log'})")


def on_real_node() -> dict[str, Any]:
    """On the local cluster, pods that must really run go to the real node (its KWOK nodes
    run nothing)."""
    if launcher.external_kubeconfig() is not None:
        return {}
    return dict(node.PLACEMENT)


def demo_values() -> dict[str, Any]:
    # the demo's namespace only, so the demo never touches anything else in a cluster
    return {"watchNamespaces": [NAMESPACE], **on_real_node()}


def ensure_namespace(cluster: Cluster, timeline: Timeline) -> None:
    def terminating() -> bool:
        try:
            ns = cluster.core.read_namespace(NAMESPACE)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return bool(ns.status.phase == "Terminating")

    if terminating():
        timeline.say(f"waiting for namespace {NAMESPACE} to finish terminating")
        wait(f"namespace {NAMESPACE} deleted", lambda: not terminating(), 120,
             lambda: "it is still terminating")  # fmt: skip
    try:
        cluster.core.create_namespace({"metadata": {"name": NAMESPACE}})
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise


def clear_previous(cluster: Cluster, timeline: Timeline) -> None:
    """A second `make demo` tells the same story: the previous run's resources go first,
    with the operator there to release its finalizers (the namespace itself stays)."""
    kinds = "monitorpolicies,models,modelversions,reviews"
    if not cluster.kubectl("get", kinds, "-n", NAMESPACE, "-o", "name").strip():
        return
    timeline.say(f"removing the previous run's model from {NAMESPACE}")
    cluster.kubectl("delete", kinds, "--all", "-n", NAMESPACE, "--wait", "--timeout=120s")


def down() -> int:
    paths = Paths.from_env()
    pid = paths.cache / "demo" / "operator.pid"
    if pid.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid.read_text()), 15)
        pid.unlink()
    launcher.down(paths)
    print("demo removed: the local cluster, Prometheus and the operator are stopped")
    return 0
