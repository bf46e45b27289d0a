"""mocli's diagnostics inside TRL's ``GRPOTrainer`` (``pip install trl``).

    >>> import mocli.trl
    >>> diag = mocli.trl.Diagnostics([correctness, format_ok], weights=[1.0, 0.5],
    ...                              fail_if=["collapse.zero_variance_group_rate > 0.8"], on_fail="stop")
    >>> trainer = GRPOTrainer(model, reward_funcs=diag.reward_funcs, callbacks=[diag.callback],
    ...                       args=GRPOConfig(..., reward_weights=[1.0, 0.5]), train_dataset=ds)

``diag.reward_funcs`` are your reward functions, each returning what it returned before;
after the last of them has scored a generation batch, the batch's rewards (one column per
function, named as TRL names them) go through ``mocli analyze`` and the chosen metrics are
logged through TRL's own ``log_metric`` (averaged over each logging step, next to
``rewards/<name>/mean``; so they reach every ``report_to`` tracker and
``trainer.state.log_history``). Groups are TRL's: ``num_generations`` consecutive
completions of one prompt. A ``fail_if`` threshold that is crossed warns
(``on_fail="warn"``) or, with ``diag.callback`` in the trainer, stops training at the end
of that step (``on_fail="stop"``).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from .diagnostics.live import BatchDiagnostics, diagnose
from .errors import UsageError


class Diagnostics:
    def __init__(self, reward_funcs: Sequence[Callable], weights: Sequence[float] | None = None, *,
                 estimators: Sequence[str] = ("grpo",), profile: str = "trl", num_generations: int | None = None,
                 metrics: Sequence[str] | str | None = None, fail_if: Sequence[str] = (), on_fail: str = "warn") -> None:
        if on_fail not in ("warn", "stop"):
            raise UsageError(f"on_fail must be 'warn' or 'stop', not '{on_fail}'")
        funcs = list(reward_funcs)
        if not funcs:
            raise UsageError("give at least one reward function")
        for f in funcs:
            if not callable(f) or inspect.iscoroutinefunction(f) or hasattr(f, "parameters"):
                raise UsageError(f"mocli.trl wraps synchronous reward functions; {f!r} is not one "
                                 "(a reward model or an async function is scored by TRL itself)")
        self.names = [getattr(f, "__name__", f"reward_{i}") for i, f in enumerate(funcs)]
        self.weights = None if weights is None else [float(w) for w in weights]
        if self.weights is not None and len(self.weights) != len(funcs):
            raise UsageError(f"{len(self.weights)} weights for {len(funcs)} reward functions")
        self.estimators = list(estimators)
        self.profile = profile
        self.num_generations = num_generations
        self.metrics = metrics
        self.fail_if = list(fail_if)
        self.on_fail = on_fail
        self.last: BatchDiagnostics | None = None  # the latest batch's
        self.failures: list[str] = []  # every check that failed, in order
        self.stop_requested = False
        self._scores: dict[int, list[float]] = {}
        self.reward_funcs = [self._wrap(i, f) for i, f in enumerate(funcs)]
        self.callback = _callback(self)

    def _wrap(self, index: int, func: Callable) -> Callable:
        last = index == len(self.names) - 1

        @functools.wraps(func)
        def scored(*args: Any, **kwargs: Any):
            out = func(*args, **kwargs)
            self._scores[index] = [math.nan if r is None else float(r) for r in out]
            if last:
                self._batch(kwargs.get("prompts", args[0] if args else None), kwargs.get("log_metric"))
            return out

        return scored

    def _batch(self, prompts: Sequence[Any] | None, log_metric: Callable | None) -> None:
        cols = [self._scores.get(i) for i in range(len(self.names))]
        self._scores = {}
        if any(c is None for c in cols) or len({len(c) for c in cols}) != 1:
            return  # a function was not called on this batch: nothing consistent to diagnose
        rewards = np.array(cols, dtype=np.float64).T
        diag = diagnose(rewards, self._groups(prompts, rewards.shape[0]), self.names, self.weights, self.estimators,
                        self.profile, self.metrics, self.fail_if)
        self.last = diag
        if log_metric is not None:
            for name, value in diag.metrics.items():
                log_metric(name, value)
        for message in diag.failed:
            self.failures.append(message)
            warnings.warn(f"mocli: {message}", RuntimeWarning, stacklevel=2)
        if diag.failed and self.on_fail == "stop":
            self.stop_requested = True

    def _groups(self, prompts: Sequence[Any] | None, n: int) -> np.ndarray:
        """TRL's groups: ``num_generations`` consecutive rows, or else each run of one prompt."""
        if self.num_generations:
            return np.arange(n) // int(self.num_generations)
        if prompts is None:
            raise UsageError("mocli.trl needs num_generations= when the reward functions are called without prompts")
        keys = [json.dumps(p, sort_keys=True, default=str) if not isinstance(p, str) else p for p in prompts]
        codes = np.zeros(n, dtype=np.int64)
        for i in range(1, n):
            codes[i] = codes[i - 1] + (keys[i] != keys[i - 1])
        return codes


def _callback(diag: Diagnostics):
    """A ``TrainerCallback`` that stops training at the end of a step whose batch crossed a
    ``fail_if`` threshold (``on_fail="stop"``); None without transformers."""
    try:
        from transformers import TrainerCallback
    except ImportError:  # pragma: no cover - trl always brings transformers
        return None

    class StopOnFailedCheck(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if diag.stop_requested:
                control.should_training_stop = True
            return control

    return StopOnFailedCheck()
