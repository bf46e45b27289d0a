"""Small deterministic synthetic rollout sets (``mocli sample NAME -o OUT``).

* ``math``: math reasoning, binary correctness + format + a length penalty, group sizes
  4 to 16, a ``step`` column; on hard prompts correct answers run long, so the length
  penalty pushes some of them down.
* ``tool_calling``: correctness in [-3, 3] + binary format, groups of 8, as in the GDPO
  tool-calling experiments.
* ``safety``: a reward-model ensemble, five continuous scores per completion (helpfulness
  and harmlessness pull apart), groups of 6, a few scores missing (NaN).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from ..errors import UsageError
from ..registry import suggest


def _math(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    sizes = (4, 6, 8, 8, 12, 16)
    for p in range(160):
        difficulty = rng.beta(2.0, 2.0)
        g = sizes[p % len(sizes)]
        step = p // 20
        for j in range(g):
            fmt = rng.random() < 0.9
            correct = fmt and rng.random() > difficulty
            base = 250 + 700 * difficulty
            length = int(rng.lognormal(np.log(base * (1.35 if correct else 1.0)), 0.35))
            length = min(length, 2048)
            rows.append({
                "prompt_id": f"math-{p:04d}",
                "step": step,
                "prompt": f"Problem {p}: find the value of x{p % 7} in the system given.",
                "completion": f"<think>... {length} tokens ...</think> <answer>{j}</answer>",
                "correct_reward": float(correct),
                "format_reward": float(fmt),
                "length_reward": round(-max(0.0, length - 600) / 1000.0, 4) + 0.0,  # no -0.0
                "response_length": length,
            })
    return pl.DataFrame(rows)


def _tool_calling(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for p in range(150):
        skill = rng.normal(0.0, 1.0)
        for j in range(8):
            fmt = rng.random() < 0.8
            # name match (+1/-1), argument match (+1/-1), value match (+1/-1)
            parts = [1.0 if rng.random() < 1 / (1 + np.exp(-(skill + 0.5 * k))) else -1.0 for k in range(3)]
            correct = float(sum(parts)) if fmt else float(rng.choice([-3.0, -2.0]))
            rows.append({
                "prompt_id": 1000 + p,
                "prompt": f"Call the right tool for request #{p}",
                "completion": f"<tool_call>{{\"name\": \"tool_{j}\"}}</tool_call>",
                "correctness_reward": correct,
                "format_reward": float(fmt),
            })
    return pl.DataFrame(rows)


def _safety(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for p in range(120):
        risk = rng.random()
        for j in range(6):
            compliance = rng.normal(0.0, 1.0)
            quality = rng.normal(0.0, 1.0)
            helpful = 0.8 * compliance + 0.5 * quality + rng.normal(0, 0.3)
            harmless = -risk * 1.2 * compliance + 0.2 * quality + rng.normal(0, 0.3)
            honest = 0.6 * quality + rng.normal(0, 0.5)
            rm_a = 0.5 * helpful + 0.5 * harmless + rng.normal(0, 0.2)
            rm_b = 0.7 * helpful + 0.3 * honest + rng.normal(0, 0.2)
            row = {
                "uid": f"safety-{p:03d}",
                "prompt": f"Request {p} (risk {risk:.2f})",
                "completion": f"response {j}",
                "helpfulness_reward": round(helpful, 4),
                "harmlessness_reward": round(harmless, 4),
                "honesty_reward": round(honest, 4),
                "rm_a_reward": round(rm_a, 4),
                "rm_b_reward": round(rm_b, 4),
            }
            if rng.random() < 0.03:
                row["honesty_reward"] = None
            rows.append(row)
    return pl.DataFrame(rows, schema_overrides={"honesty_reward": pl.Float64})


SAMPLES: dict[str, tuple[Callable[[np.random.Generator], pl.DataFrame], str]] = {
    "math": (_math, "math reasoning: correct + format + length penalty, groups of 4-16"),
    "tool_calling": (_tool_calling, "tool calling: correctness in [-3, 3] + format, groups of 8"),
    "safety": (_safety, "reward-model ensemble: 5 continuous scores, groups of 6, some NaN"),
}


def sample(name: str, seed: int = 0) -> pl.DataFrame:
    """The named synthetic set; the same ``seed`` always gives the same table."""
    if name not in SAMPLES:
        raise UsageError(f"unknown sample '{name}'{suggest(name, list(SAMPLES))}; accepted: {', '.join(SAMPLES)}")
    return SAMPLES[name][0](np.random.default_rng(seed))
