"""Advantages for trainers, on Torch tensors (``pip install mocli[torch]``).

    >>> import mocli.torch
    >>> adv = mocli.torch.advantages(rewards, group_index, estimator="gdpo", profile="trl", weights=[1.0, 0.5])

The numbers are those of ``mocli advantages`` on the same rows (the same estimators,
profiles and float64 arithmetic), so what was analysed offline is what trains. Tensors of
any device are accepted; the result comes back on the rewards' device. Importing
:mod:`mocli` never imports Torch; this module does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .core.rollouts import Rollouts
from .engine.pipeline import compute_advantages


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy() if x.dtype != torch.bfloat16 else x.detach().float().cpu().numpy()
    return np.asarray(x)


def advantages(
    rewards: torch.Tensor,
    group_index: Any,
    estimator: str = "grpo",
    profile: str = "mocli",
    weights: Sequence[float] | None = None,
    *,
    names: Sequence[str] | None = None,
    scheme: str = "weighted_sum",
    conditions: Sequence[str] = (),
    gates: Sequence[str] = (),
    minimize: Sequence[str] = (),
    length: Any = None,
    baseline: Any = None,
    batch_index: Any = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One advantage per row.

    ``rewards``: ``(n,)`` or ``(n, k)`` (one column per objective; NaN = not applicable).
    ``group_index``: ``(n,)`` group keys of any kind (a tensor of ids, a list of prompt
    strings, verl's ``uid`` array), or ``(n, m)``: the tuple of a row's ``m`` keys is its
    group (agent-wise groups: prompt id and agent id, as ``-g prompt -g agent``). ``weights``, ``names``, ``minimize``, ``scheme``,
    ``conditions`` and ``gates`` are those of the CLI (conditions and gates name
    objectives, so give ``names`` with them). ``length`` (token counts) and ``baseline``
    are per-row tensors where the estimator needs them. ``batch_index`` (``(n,)`` keys of
    any kind, e.g. the step) splits the rows into training batches: batch-wide statistics
    (GDPO's batch z-score, whitening, ``scale=batch``) are then taken within each batch,
    as ``--batch-by`` does; by default the rows are one batch. The result has the rewards'
    floating dtype (float32 when they are integers) unless ``dtype`` says otherwise, and
    lives on the rewards' device.
    """
    if not isinstance(rewards, torch.Tensor):
        rewards = torch.as_tensor(rewards)
    r = _numpy(rewards).astype(np.float64)
    keys = _numpy(group_index)
    if keys.ndim not in (1, 2) or keys.shape[0] != r.shape[0]:
        raise ValueError(f"group_index has shape {keys.shape}; expected ({r.shape[0]},), one key per row, "
                         f"or ({r.shape[0]}, m), one tuple of keys per row")
    ro = Rollouts.from_arrays(
        r, keys, names=names, weights=weights, minimize=minimize,
        length=None if length is None else _numpy(length), baseline=None if baseline is None else _numpy(baseline),
        batch=None if batch_index is None else _numpy(batch_index),
    )
    adv = compute_advantages(ro, [estimator], scheme=scheme, conditions=conditions, gates=gates, profile=profile)[estimator]
    if dtype is None:
        dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    return torch.from_numpy(adv).to(device=rewards.device, dtype=dtype)


def diagnostics(
    rewards: torch.Tensor,
    group_index: Any,
    names: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    *,
    estimators: Sequence[str] = ("grpo",),
    profile: str = "verl",
    metrics: Sequence[str] | str | None = None,
    fail_if: Sequence[str] = (),
) -> dict[str, float]:
    """mocli's diagnostics of one training batch, as ``{name: value}`` to merge into a
    trainer's metrics (in verl's ``fit`` loop: ``metrics.update(...)`` before
    ``logger.log``). ``rewards`` ``(n, k)``, ``group_index`` as for :func:`advantages`
    (verl's ``uid``). Names as ``--export`` writes them (``mocli/grpo/sign_flip.max``);
    ``metrics``: report paths to log (default: sign flips, collapse, resolution, the
    influence gap, Pareto order, mixed signs), or ``"all"``. With ``fail_if`` (``check``
    expressions) the result also holds ``mocli/checks_failed``, how many crossed their
    threshold, for the trainer to act on (:func:`mocli.diagnostics.live.diagnose` gives
    the messages)."""
    from .diagnostics.live import diagnose

    r = _numpy(rewards)
    r = r[:, None] if r.ndim == 1 else r
    k = r.shape[1]
    out = diagnose(r, _numpy(group_index), list(names) if names is not None else [f"r{j}" for j in range(k)], weights,
                   estimators, profile, metrics, fail_if)
    values = dict(out.metrics)
    if fail_if:
        values["mocli/checks_failed"] = float(len(out.failed))
    return values
