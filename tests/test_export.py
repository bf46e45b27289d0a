"""``--export``: the report's metrics in TensorBoard (read back with TensorBoard's own
event reader), in an MLflow store (read back with MLflow's client) and as JSON lines,
against the analyze report's own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"


def analyze_json(run_cli, *args):
    code, out, err = run_cli("analyze", MATH, "--by", "step", "--format", "json", *args)
    assert code == 0, err
    return json.loads(out), err


def test_tensorboard_scalars_per_step(run_cli, tmp_path):
    """Read back the way TensorBoard's own server reads a log folder (the plugin event
    accumulator): the values are the scalars plugin's, one per step."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")
    from tensorboard.util import tensor_util

    doc, err = analyze_json(run_cli, "--export", f"tensorboard:{tmp_path / 'tb'}")
    assert "wrote" in err and "tensorboard" in err
    acc = accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={accumulator.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert all(acc.SummaryMetadata(t).plugin_data.plugin_name == "scalars" for t in tags)
    assert "mocli/grpo/sign_flip.max" in tags and "mocli/gdpo/influence.gap" in tags
    assert "mocli/conflict.mixed_sign_rate" in tags and "mocli/whole_table/grpo/sign_flip.max" in tags

    def series(tag):
        return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]

    steps = series("mocli/grpo/sign_flip.max")
    assert [s for s, _ in steps] == list(range(8))
    for step, value in steps:
        assert value == pytest.approx(doc["by"][str(step)]["estimators"]["grpo"]["sign_flip"]["max"], rel=1e-6)
    ((_, whole),) = series("mocli/whole_table/gdpo/collapse.resolution")
    assert whole == pytest.approx(doc["estimators"]["gdpo"]["collapse"]["resolution"], rel=1e-6)
    # every number of every slice, and nothing else (an estimator's settings are not metrics)
    expected = set()
    for sub in doc["by"].values():
        for root in ("input", "objectives", "conflict", "budget"):
            expected |= {f"mocli/{p}" for p in numbers(sub[root], root)}
        for label, entry in sub["estimators"].items():
            expected |= {f"mocli/{label}/{p}" for k, v in entry.items() if k != "params" for p in numbers(v, k)}
    assert {t for t in tags if not t.startswith("mocli/whole_table/")} == expected


def numbers(node, path):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def test_mlflow_metrics_in_a_local_store(run_cli, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    doc, err = analyze_json(run_cli, "--export", f"mlflow:{uri}", "-e", "grpo", "-e", "gdpo:eps=1e-4")
    assert "logged" in err and "MLflow run" in err
    assert "INFO" not in err  # MLflow's own log lines stay out of mocli's stderr
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mocli")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["estimators"] == "grpo,gdpo:eps=1e-4"
    history = client.get_metric_history(run.info.run_id, "mocli/grpo/sign_flip.max")
    assert sorted(m.step for m in history) == list(range(8))
    for m in history:
        assert m.value == pytest.approx(doc["by"][str(m.step)]["estimators"]["grpo"]["sign_flip"]["max"], rel=1e-12)
    # a label with characters MLflow refuses in a name (=) is written with _ in their place
    gdpo = client.get_metric_history(run.info.run_id, "mocli/gdpo:eps_1e-4/collapse.resolution")
    assert len(gdpo) == 8


def test_jsonl_one_line_per_slice(run_cli, tmp_path):
    out = tmp_path / "metrics.jsonl"
    doc, _ = analyze_json(run_cli, "--export", f"jsonl:{out}")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["slice"] for line in lines] == [None] + [str(s) for s in range(8)]
    assert lines[3]["step"] == 2 and lines[3]["by"] == "step"
    assert lines[3]["metrics"]["mocli/gdpo/sign_flip.max"] == doc["by"]["2"]["estimators"]["gdpo"]["sign_flip"]["max"]
    assert lines[0]["metrics"]["mocli/whole_table/input.rows"] == 1430


def test_check_and_compare_export_too(run_cli, tmp_path):
    out = tmp_path / "c.jsonl"
    code, _, err = run_cli("check", MATH, "--fail-if", "sign_flip.max > 0.9", "--export", f"jsonl:{out}")
    assert code == 0, err
    assert json.loads(out.read_text().splitlines()[0])["metrics"]["mocli/grpo/sign_flip.max"] > 0
    out2 = tmp_path / "k.jsonl"
    code, _, err = run_cli("compare", MATH, "-e", "grpo", "-e", "rloo", "--export", f"jsonl:{out2}", "--format", "json")
    assert code == 0, err
    assert "mocli/agreement.grpo|rloo.sign_agreement" in json.loads(out2.read_text())["metrics"]


@pytest.mark.parametrize("value, needle", [
    ("wandb:proj", "KIND:DEST with KIND one of tensorboard, mlflow, jsonl"),
    ("jsonl:", "KIND:DEST"),
    ("jsonl:/no/such/folder/m.jsonl", "--export jsonl"),
])
def test_bad_export_exits_2_before_any_work(run_cli, value, needle):
    code, out, err = run_cli("analyze", MATH, "--export", value)
    assert code == 2 and out == "" and err.startswith("error: ") and needle in err, err


def test_export_never_replaces_an_input(run_cli, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt_id": 1, "correct_reward": 1.0}\n{"prompt_id": 1, "correct_reward": 0.0}\n')
    before = data.read_text()
    code, _, err = run_cli("analyze", data, "--export", f"jsonl:{data}")
    assert code == 2 and err.startswith("error: ") and data.read_text() == before
