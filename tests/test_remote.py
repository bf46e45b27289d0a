"""Inputs in an object store, read through Polars' cloud readers from a real S3 server
(moto's, started on 127.0.0.1 by the tests): the report equals the one on the same files
read locally, for plain tables, hive folders, globs, web addresses and framework dumps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
DUMPS = ROOT.parent / "shared" / "data" / "dumps"
BUCKET = "rollouts"
KEYS = {"aws_access_key_id": "mocli-test", "aws_secret_access_key": "mocli-test", "aws_region": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A running S3 server with the math sample split by step (a hive folder), the sample
    whole, and the TRL and verl dumps; and the same files on local disk."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEYS["aws_access_key_id"],
                          aws_secret_access_key=KEYS["aws_secret_access_key"], region_name=KEYS["aws_region"])
    client.create_bucket(Bucket=BUCKET)
    local = tmp_path_factory.mktemp("local")
    frame = pl.read_parquet(MATH)
    for step in frame.get_column("step").unique().sort().to_list():
        buf = io.BytesIO()
        frame.filter(pl.col("step") == step).drop("step").write_parquet(buf)
        client.put_object(Bucket=BUCKET, Key=f"math/step={step}/part.parquet", Body=buf.getvalue())
        (local / "math" / f"step={step}").mkdir(parents=True)
        (local / "math" / f"step={step}" / "part.parquet").write_bytes(buf.getvalue())
    client.put_object(Bucket=BUCKET, Key="whole/math.parquet", Body=MATH.read_bytes(), ACL="public-read")
    for name in ("trl-1.16.0/default", "verl-0.9.1/v0_plain"):
        folder = DUMPS / name
        if folder.is_dir():
            for f in folder.rglob("*"):
                if f.is_file():
                    client.put_object(Bucket=BUCKET, Key=f"dumps/{name}/{f.relative_to(folder)}", Body=f.read_bytes())
    options = [f"--storage-option={k}={v}" for k, v in dict(KEYS, aws_endpoint_url=endpoint, aws_allow_http="true").items()]
    yield {"endpoint": endpoint, "options": options, "local": local}
    server.stop()


def report(run_cli, *args):
    code, out, err = run_cli("analyze", *args, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    for one in [doc, *doc.get("by", {}).values()]:  # the remote read adds a note; the rest is equal
        one["input"].pop("notes")
    return doc, err


def test_a_hive_folder_in_s3_equals_the_local_one(run_cli, s3):
    remote, err = report(run_cli, f"s3://{BUCKET}/math/", *s3["options"])
    local, _ = report(run_cli, s3["local"] / "math")
    assert remote == local
    assert remote["input"]["rows"] == 1430
    assert f"note: read s3://{BUCKET}/math/ with Polars' cloud reader: 8 files, 1430 rows" in err


def test_a_glob_and_the_by_column_from_hive_paths(run_cli, s3):
    remote, _ = report(run_cli, f"s3://{BUCKET}/math/step=*/*.parquet", "--by", "step", *s3["options"])
    local, _ = report(run_cli, s3["local"] / "math", "--by", "step")
    assert remote == local and list(remote["by"]) == [str(step) for step in range(8)]


def test_credentials_from_the_environment(run_cli, s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", KEYS["aws_region"])
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    remote, _ = report(run_cli, f"s3://{BUCKET}/whole/math.parquet", "-e", "grpo")
    local, _ = report(run_cli, MATH, "-e", "grpo")
    assert remote == local


def test_a_web_address(run_cli, s3):
    remote, _ = report(run_cli, f"{s3['endpoint']}/{BUCKET}/whole/math.parquet")
    local, _ = report(run_cli, MATH)
    assert remote == local


def test_advantages_from_s3_to_a_local_file(run_cli, s3, tmp_path):
    code, _, err = run_cli("advantages", f"s3://{BUCKET}/whole/math.parquet", "-e", "gdpo", "-o", tmp_path / "r.parquet",
                           *s3["options"])
    assert code == 0, err
    code, _, err = run_cli("advantages", MATH, "-e", "gdpo", "-o", tmp_path / "l.parquet")
    assert code == 0, err
    assert pl.read_parquet(tmp_path / "r.parquet").equals(pl.read_parquet(tmp_path / "l.parquet"))


@pytest.mark.parametrize("source, name", [("trl", "trl-1.16.0/default"), ("verl", "verl-0.9.1/v0_plain")])
def test_framework_dumps_in_s3(run_cli, s3, source, name):
    if not (DUMPS / name).is_dir():
        pytest.skip("../shared/data/dumps is not present")
    remote, err = report(run_cli, f"s3://{BUCKET}/dumps/{name}/", "--from", source, *s3["options"])
    local, _ = report(run_cli, DUMPS / name, "--from", source)
    assert remote == local
    if source != "trl":  # verl's v0 dump logs no advantages to verify
        return
    code, out, err = run_cli("verify", f"s3://{BUCKET}/dumps/{name}/", "--from", source, "--format", "json", *s3["options"])
    assert code in (0, 1), err
    code, out_local, _ = run_cli("verify", DUMPS / name, "--from", source, "--format", "json")
    remote_v, local_v = json.loads(out), json.loads(out_local)
    assert remote_v["max_abs_diff"] == local_v["max_abs_diff"] and remote_v["passed"] == local_v["passed"]


@pytest.mark.parametrize("args, needle", [
    ([f"s3://{BUCKET}/nothing-here/"], "holds no"),
    ([f"s3://{BUCKET}/whole/missing.parquet"], "cannot read 's3://rollouts/whole/missing.parquet'"),
    ([f"s3://{BUCKET}/whole/math.parquet", "--storage-option", "aws_region"], "--storage-option 'aws_region' is not KEY=VALUE"),
    ([f"s3://{BUCKET}/whole/rows.json"], "remote .json array"),
])
def test_bad_remote_inputs_exit_2_with_one_line(run_cli, s3, args, needle):
    code, out, err = run_cli("analyze", *args, *s3["options"])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_storage_options_in_the_config(run_cli, s3, tmp_path):
    endpoint = s3["endpoint"]
    config = tmp_path / "mocli.toml"
    config.write_text("[storage_options]\n" + "\n".join(
        f'{k} = "{v}"' for k, v in dict(KEYS, aws_endpoint_url=endpoint, aws_allow_http="true").items()) + "\n")
    remote, _ = report(run_cli, f"s3://{BUCKET}/whole/math.parquet", "--config", config)
    local, _ = report(run_cli, MATH)
    assert remote == local
