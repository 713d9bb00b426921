"""The training controller and the writers of its requests, against the in-memory fake:
one Job per trigger whatever restarts, a policy's retrain action recorded once, and
`ciclo register` refusing to create a version whose files it cannot read."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from fakekube import Crash, FakeKube, any_kube

from ciclo.api.model import Model
from ciclo.cli import main as cli
from ciclo.config import Config
from ciclo.controllers import training
from ciclo.kube.client import MODEL_VERSIONS, MODELS
from ciclo.records import retrain

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TRAINING = {
    "template": {"containers": [{"command": ["python", "/src/train.py"]}]},
    "artifactStore": "file:///data/models/iris",
}


def cluster(**spec: Any) -> FakeKube:
    return FakeKube(
        (
            MODELS,
            {
                "apiVersion": "ciclo.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "iris", "namespace": "ns"},
                "spec": {"version": "v1", "training": TRAINING, **spec},
                "status": {"servingVersion": "v1"},
            },
        )
    )


def model(fake: FakeKube) -> Model:
    return Model.model_validate(fake.obj(MODELS, "ns", "iris"))


def reconcile(fake: FakeKube) -> float | None:
    return training.reconcile(any_kube(fake), Config.from_env(), "ns", "iris")


def test_a_request_starts_one_job_whatever_restarts() -> None:
    fake = cluster()
    assert retrain.request(any_kube(fake), model(fake), "r1", "ManualRetrain", "", NOW)
    # killed between the Job's create and the status that records it
    fake.fail("apply-status", "models")
    with pytest.raises(Crash):
        reconcile(fake)
    assert fake.count("create", "jobs") == 1
    reconcile(fake)  # after the restart: the same name, a 409, no second Job
    reconcile(fake)
    assert len([k for k in fake.objects if k[0] == "jobs"]) == 1
    status = fake.obj(MODELS, "ns", "iris")["status"]
    assert status["training"]["handledRequest"] == "r1"
    assert len(fake.events("TrainingStarted")) == 1
    # a second request while it runs folds into it
    assert retrain.request(any_kube(fake), model(fake), "r2", "ManualRetrain", "", NOW)
    reconcile(fake)
    assert len([k for k in fake.objects if k[0] == "jobs"]) == 1
    assert fake.obj(MODELS, "ns", "iris")["status"]["training"]["handledRequest"] == "r2"


def test_the_same_request_is_recorded_once_and_needs_training() -> None:
    fake = cluster()
    assert retrain.request(any_kube(fake), model(fake), "rule/v1/x", "MonitorPolicy p", "", NOW)
    assert not retrain.request(any_kube(fake), model(fake), "rule/v1/x", "MonitorPolicy p", "", NOW)
    untrained = cluster(training=None)
    untrained.obj(MODELS, "ns", "iris")["spec"].pop("training")
    with pytest.raises(retrain.RetrainRefused):
        retrain.request(any_kube(untrained), model(untrained), "r", "ManualRetrain", "", NOW)


def test_a_model_without_training_costs_one_read() -> None:
    fake = cluster()
    fake.obj(MODELS, "ns", "iris")["spec"].pop("training")
    assert reconcile(fake) is None
    assert fake.calls == [("get", "models", "iris")]


def test_register_refuses_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ModelVersion without its artifact, digest, baseline and dataset: every digest is
    taken before the create."""
    fake = FakeKube()
    monkeypatch.setattr(cli, "_kube", lambda args: any_kube(fake))
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"model")
    base = ["register", "--model", "iris", "--version", "v2", "--format", "sklearn"]
    assert cli.main([*base, str(tmp_path / "missing.joblib")]) == 1
    assert cli.main([*base, str(artifact), "--baseline", str(tmp_path / "none.json")]) == 1
    assert cli.main([*base, str(artifact), "--dataset", str(tmp_path / "none.csv")]) == 1
    assert fake.count("create", "modelversions") == 0

    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    monkeypatch.setenv("CICLO_RUN", "iris-train-abc-1")
    monkeypatch.setenv("CICLO_TRIGGER", "manual-1")
    monkeypatch.setenv("CICLO_PARENT_VERSION", "v1")
    monkeypatch.setenv("CICLO_NAMESPACE", "ns")
    args = [
        *base,
        str(artifact),
        "--dataset",
        str(data),
        "--param",
        "seed=1",
        "--git-commit",
        "abc123",
    ]
    assert cli.main(args) == 0
    spec = fake.obj(MODEL_VERSIONS, "ns", "iris-v2")["spec"]
    assert spec["source"] == {
        "runId": "iris-train-abc-1",
        "gitCommit": "abc123",
        "trigger": "manual-1",
        "parentVersion": "v1",
        "datasetSha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        **({"author": spec["source"]["author"]} if "author" in spec["source"] else {}),
    }
    assert spec["parameters"] == {"seed": "1"}
    # a second registration of the same version is a conflict, not an overwrite
    assert cli.main(args) == 1


def test_register_reads_pvc_uris_where_the_claim_is_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run on a pvc:// store writes files on the mounted claim and registers their
    pvc:// URIs: the digests are read where `ciclo fetch` will read them."""
    fake = FakeKube()
    monkeypatch.setattr(cli, "_kube", lambda args: any_kube(fake))
    monkeypatch.setenv("CICLO_PVC_ROOT", str(tmp_path))
    run = tmp_path / "models" / "iris" / "run-1"
    run.mkdir(parents=True)
    (run / "model.joblib").write_bytes(b"model")
    (run / "profile.json").write_bytes(b"{}")
    uri = "pvc://models/iris/run-1"
    base = ["register", "-n", "ns", "--model", "iris", "--version", "v2", "--format", "sklearn"]
    assert cli.main([*base, "pvc://models", "--baseline", f"{uri}/profile.json"]) == 1
    assert fake.count("create", "modelversions") == 0
    assert cli.main([*base, f"{uri}/model.joblib", "--baseline", f"{uri}/profile.json"]) == 0
    spec = fake.obj(MODEL_VERSIONS, "ns", "iris-v2")["spec"]
    assert spec["artifact"]["uri"] == f"{uri}/model.joblib"
    assert spec["artifact"]["sha256"] == hashlib.sha256(b"model").hexdigest()
    assert spec["baseline"] == {
        "uri": f"{uri}/profile.json",
        "sha256": hashlib.sha256(b"{}").hexdigest(),
    }
