"""The serving benchmark's pure helpers (benchmarks/serving.py): its body, parsing and table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"
    spec = importlib.util.spec_from_file_location("bench_serving", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serving"] = module
    spec.loader.exec_module(module)
    return module


def test_infer_body_is_one_oip_row(bench: ModuleType) -> None:
    body = bench.infer_body([0.5, 1.0, 2.0], "FP32")
    assert body == {
        "inputs": [
            {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0.5, 1.0, 2.0]}
        ]
    }


def test_predicted_class_reads_each_servers_answer(bench: ModuleType) -> None:
    ciclo = {
        "outputs": [{"name": "predict_proba", "data": [0.1, 0.9]}, {"name": "predict", "data": [2]}]
    }
    kserve = {"outputs": [{"name": "output-0", "shape": [1], "data": [1]}]}
    nested = {"outputs": [{"name": "predict", "data": [[0]]}]}
    assert [bench.predicted_class(r) for r in (ciclo, kserve, nested)] == [2, 1, 0]


def test_table_medians_and_ratios_to_the_faster_mlserver(bench: ModuleType) -> None:
    def run(server: str, rps: float, p99: float, c: int = 32) -> dict[str, object]:
        return {
            "server": server,
            "model": "sklearn",
            "concurrency": c,
            "rps": rps,
            "p50_ms": p99 / 2,
            "p99_ms": p99,
        }

    runs = [
        run("MLServer", 800, 100),
        run("MLServer", 1000, 120),
        run("MLServer", 900, 80),
        run("MLServer parallel_workers=0", 1000, 40),
        run("ciclo serve", 3000, 20),
        run("ciclo serve --no-monitoring", 4000, 10),
    ]
    text = bench.table({"runs": runs})
    assert "| sklearn | MLServer | 32 | 900 | 50.00 | 100.00 | 0.90x | 2.50x |" in text
    assert "| sklearn | ciclo serve | 32 | 3000 | 10.00 | 20.00 | 3.00x | 0.50x |" in text
    assert "| sklearn | ciclo serve | 32 | 3000 | 4000 | 25.0% |" in text
