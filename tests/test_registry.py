"""The one registry: did-you-mean, and third-party estimators through entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mocli import UsageError, make_estimator
from mocli.registry import Registry

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    import numpy as np

    from mocli.estimators import Grouped
    from mocli.params import param


    @dataclass(frozen=True)
    class SignOnly(Grouped):
        """A = sign(s - mu_g) * step: only the direction of the group-relative score."""

        name = "sign_only"
        source = "a test plugin"
        step: float = param(1.0, "size of every update")

        def compute(self, batch, work):
            from mocli.estimators.normalise import group_z

            c = group_z(batch.scalar, batch.scorable, batch, work, eps=0.0, eps_mode="add", ddof=1,
                        singleton="zero", scaled=False)
            return np.sign(c) * self.step
''')


def test_did_you_mean_and_accepted_list():
    from types import SimpleNamespace as Thing

    reg: Registry = Registry("thing")
    reg.register(Thing(name="alpha"))
    beta = reg.register(Thing(name="beta"))
    assert reg.get("beta") is beta
    with pytest.raises(UsageError, match=r"unknown thing 'alpah' \(did you mean 'alpha'\?\); accepted: alpha, beta"):
        reg.get("alpah")
    with pytest.raises(ValueError):
        reg.register(Thing(name="alpha"))  # twice
    with pytest.raises(ValueError):
        reg.register(Thing(name=""))  # no name


def test_every_registered_name_is_the_objects_own():
    from mocli import ESTIMATORS, PROFILES, SCHEMES

    for registry in (ESTIMATORS, SCHEMES, PROFILES):
        for key, obj in registry:
            assert key == obj.name


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(UsageError, match="accepted: nan_policy, clip, singleton, eps, eps_mode, ddof, scale, leave_one_out"):
        make_estimator("grpo:sacle=batch")


def test_third_party_estimator_through_entry_points(tmp_path):
    (tmp_path / "mocli_sign_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "mocli_sign_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mocli-sign-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mocli.estimators]\nsign_only = mocli_sign_plugin:SignOnly\n")
    data = tmp_path / "r.csv"
    data.write_text("g,r\n1,1\n1,0\n1,0.5\n2,3\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    listed = subprocess.run([sys.executable, "-m", "mocli", "estimators", "--format", "json"], env=env, capture_output=True, text=True)
    entry = [e for e in json.loads(listed.stdout) if e["name"] == "sign_only"]
    assert entry and entry[0]["params"][-1]["name"] == "step"
    out = tmp_path / "o.csv"
    run = subprocess.run([sys.executable, "-m", "mocli", "advantages", str(data), "-g", "g", "-r", "r", "-e", "sign_only:step=0.5", "-o", str(out)],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert out.read_text().splitlines()[1:] == ["1,1.0,0.5", "1,0.0,-0.5", "1,0.5,0.0", "2,3.0,0.0"]
