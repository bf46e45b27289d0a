"""Scalar estimators: the scheme's score ``s`` -> advantage ``A``, per group. The symbols
of the docstrings (``mu_g``, ``sigma_g``, ``n_g``, ``B``) are defined in :mod:`.notation`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, UsageError
from ..params import param
from .base import ESTIMATORS, Estimator, Grouped, GroupScaled, Scaled
from ..core.tally import Count, Sums
from .normalise import (
    GroupStats, batch_mean_std, centre_loo, denominator, divide, expand, group_z, lone_rule, singleton_rule, whiten,
)


@ESTIMATORS.register
@dataclass(frozen=True)
class GRPO(GroupScaled):
    """Group-relative z-score: ``A = (s - mu_g) / scale``.

    * ``scale=group``: ``sigma_g`` (``ddof``, default 1 as ``torch.std``), with ``eps``
      applied per ``eps_mode`` (default ``sigma_g + eps``, eps 1e-6).
    * ``scale=batch``: the std of ``s`` over all scorable rows of ``B`` (TRL
      ``scale_rewards="batch"``); ``scale=none``: no division (Dr. GRPO).
    * ``leave_one_out=true`` (NeMo-RL): the mean and the std come from the *other* scorable
      rows of the group (unbiased std of the others); with ``eps_mode=skip_zero`` a row
      whose others are all equal keeps its centred value.
    * Singleton group: 0 (``singleton=zero``) or ``s / (1 + eps)`` (``raw``, verl).
      Constant group: exactly 0. NaN: rows whose weighted objectives are all NaN are
      unscorable (0) and excluded from every statistic.
    """

    name = "grpo"
    source = "DeepSeekMath (Shao et al. 2024); TRL GRPOTrainer; verl compute_grpo_outcome_advantage"
    reads_rewards = False
    scale: str = param("group", "group (sigma_g), batch (std of s over B), none", choices=("group", "batch", "none"))
    leave_one_out: bool = param(False, "baseline and std from the other rows of the group (NeMo-RL)")

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        if self.scale == "group":
            return group_z(
                s, v, batch, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof,
                singleton=self.singleton, leave_one_out=self.leave_one_out, into=work.placement,
            )
        if self.leave_one_out:
            c = centre_loo(s, v, batch, self.ddof, work)
            a, raw = c.centred, s
            if self.scale == "batch":
                _, sd = batch_mean_std(s, v, self.ddof, work)
                a = divide(a, sd, self.eps, self.eps_mode)
                raw = divide(s, sd, self.eps, self.eps_mode)
            lone = v & (c.count == 1)
            return np.where(lone, raw if self.singleton == "raw" else 0.0, a)
        if self.scale == "none":
            return group_z(s, v, batch, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof,
                           singleton=self.singleton, scaled=False, into=work.placement)
        st = GroupStats.of(s, v, batch, self.ddof, work)
        _, sd = batch_mean_std(s, v, self.ddof, work)
        shift, live, _ = lone_rule(st, st.mean, st.live, self.singleton)
        return expand(s, v, batch, shift, live, work, den=float(denominator(sd, self.eps, self.eps_mode)),
                      into=work.placement)


@ESTIMATORS.register
@dataclass(frozen=True)
class DrGRPO(Grouped):
    """Group-centred score with no scaling: ``A = s - mu_g`` (= ``grpo:scale=none``).

    Singleton group: 0, or ``s`` with ``singleton=raw``. Constant group: exactly 0.
    """

    name = "dr_grpo"
    source = "Dr. GRPO (Liu et al. 2025, 'Understanding R1-Zero-like training')"
    reads_rewards = False

    def compute(self, batch, work):
        return GRPO(scale="none", singleton=self.singleton).compute(batch, work)


@ESTIMATORS.register
@dataclass(frozen=True)
class RLOO(GroupScaled):
    """REINFORCE leave-one-out: ``A = s - (sum_g s - s) / (n_g - 1) = n_g/(n_g-1) (s -
    mu_g)``.

    ``normalize=true`` then z-scores ``A`` over the scorable rows of ``B``:
    ``(A - mean_B A) / (std_B A [+] eps)`` with ``ddof`` and ``eps_mode``. Singleton
    group: 0, or ``s`` with ``singleton=raw`` (verl keeps the raw score). Constant group:
    exactly 0 (before normalisation).
    """

    name = "rloo"
    source = "Ahmadian et al. 2024 (RLOO); TRL RLOOTrainer; verl; OpenRLHF"
    reads_rewards = False
    normalize: bool = param(False, "z-score the advantages over B afterwards")

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        st = GroupStats.of(s, v, batch, self.ddof, work)
        n = st.count.astype(np.float64)
        shift, live, den = lone_rule(st, st.mean, st.live, self.singleton, np.maximum(n - 1, 1))
        a = expand(s, v, batch, shift, live, work, mul=np.where(st.lone, 1.0, n), den=den,
                   into=None if self.normalize else work.placement)
        if self.normalize:
            a = whiten(a, v, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof, into=work.placement)
        return a


@dataclass(frozen=True)
class _Whitened(Scaled):
    token_weighted: bool = param(False, "each row counts length times; scale rsqrt(var + var_eps) (verl masked_whiten)")
    var_eps: float = param(1e-8, "variance stabiliser of token-weighted whitening")

    def _whiten(self, x, batch, work):
        """The estimator's last step."""
        length = self.needs("length", batch, ":token_weighted=true") if self.token_weighted else None
        return whiten(
            x, batch.scorable, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof,
            length=length, var_eps=self.var_eps, into=work.placement,
        )


@ESTIMATORS.register
@dataclass(frozen=True)
class ReinforcePP(_Whitened):
    """REINFORCE++: ``A = whiten_B(s)`` with no group baseline.

    ``whiten_B(x) = (x - mean_B x) / (std_B x [+] eps)`` over scorable rows (``ddof``,
    ``eps_mode``). ``token_weighted=true``: each row counts ``length`` times, the variance
    is Bessel-corrected over the token count (``ddof=1``) and the scale is ``rsqrt(var +
    var_eps)``, exactly as verl's ``masked_whiten``. Groups play no part.
    """

    name = "reinforce_pp"
    source = "REINFORCE++ (Hu 2025); verl compute_reinforce_plus_plus_outcome_advantage"
    reads_rewards = False
    by_group = False

    def compute(self, batch, work):
        return self._whiten(batch.scalar, batch, work)


@ESTIMATORS.register
@dataclass(frozen=True)
class ReinforcePPBaseline(_Whitened, Grouped):
    """REINFORCE++ with a group-mean baseline: ``A = whiten_B(s - mu_g)``.

    Whitening as in ``reinforce_pp``. Singleton group: centred value 0, or ``s`` with
    ``singleton=raw`` (verl: group mean 0), before whitening. The openrlhf profile makes
    the whitening population-variance (``ddof=0``), token-weighted, with ``rsqrt(max(var,
    1e-8))`` (``eps_mode=floor``).
    """

    name = "reinforce_pp_baseline"
    source = "verl reinforce_plus_plus_baseline; OpenRLHF reinforce_baseline"
    reads_rewards = False

    def compute(self, batch, work):
        # centred on the group mean in one pass (no scale: eps and ddof play no part)
        x = group_z(batch.scalar, batch.scorable, batch, work, eps=self.eps, eps_mode=self.eps_mode, ddof=1,
                    singleton=self.singleton, scaled=False, out=work.scratch("values", batch.n))
        return self._whiten(x, batch, work)


@ESTIMATORS.register
@dataclass(frozen=True)
class ReMax(Estimator):
    """ReMax: ``A = s - baseline_i`` with the greedy-decoding reward from the ``--baseline``
    column. A row whose baseline is NaN gets 0. No group statistics."""

    name = "remax"
    source = "ReMax (Li et al. 2023); verl remax"
    reads_rewards = False
    by_group = False

    def compute(self, batch, work):
        b = self.needs("baseline", batch)
        return np.where(np.isnan(b), 0.0, batch.scalar - b)


@ESTIMATORS.register
@dataclass(frozen=True)
class OPO(Grouped):
    """Optimal-baseline policy optimisation: ``A = s - sum_g(L s) / sum_g L`` with ``L`` the
    ``--length`` column (length-weighted group mean as baseline).

    Singleton group: 0, or ``s`` with ``singleton=raw``. Constant group: exactly 0. A group
    whose lengths sum to 0 gets 0.
    """

    name = "opo"
    source = "OPO (Hao et al. 2025, on-policy RL with optimal reward baseline); verl opo"
    reads_rewards = False

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        L = self.needs("length", batch)
        st = GroupStats.of(s, v, batch, 1, work)
        wm = work.device.seg_weighted_mean(s, L, v, batch.order, batch.offsets)
        shift, live, _ = lone_rule(st, wm, st.live & ~np.isnan(wm), self.singleton)
        return expand(s, v, batch, shift, live, work, into=work.placement)


@ESTIMATORS.register
@dataclass(frozen=True)
class GPG(Grouped):
    """Group policy gradient: ``A = (s - mu_g) * |B| / (|B| - M)`` with ``|B|`` the scorable
    rows of the training batch and ``M`` those in zero-variance groups (constant groups and
    singletons), which carry no signal; the factor rescales the gradient to the live rows.

    Singleton group: 0, or ``s`` times the factor with ``singleton=raw``. When every row
    is in a zero-variance group the advantages are 0.
    """

    name = "gpg"
    source = "GPG (Chu et al. 2025, official code)"
    reads_rewards = False

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        st = GroupStats.of(s, v, batch, 1, work)
        # the factor counts rows of the whole batch
        counts = Count(np.array([st.count.sum(), st.count[st.const].sum()]))
        total, dead = (int(x) for x in work.tally("rows", counts).n)
        if total == dead:
            return np.zeros_like(s)
        factor = total / (total - dead)
        shift, live, _ = lone_rule(st, st.mean, st.live, self.singleton)
        return expand(s, v, batch, shift, live, work, mul=factor, into=work.placement)


@ESTIMATORS.register
@dataclass(frozen=True)
class PassK(Scaled):
    """Pass@k advantage: only the group's first (in file order) row with the largest ``s``
    gets ``(s_max - s_second) / (sigma_g [+] eps)`` (or ``s_max - s_second`` with
    ``normalize=false``); every other row gets 0. ``s_second`` is the second largest value
    (equal to ``s_max`` on ties, giving 0). A group of one scorable row is an input error.
    """

    name = "passk"
    source = "verl compute_grpo_passk_outcome_advantage (Chen et al. 2025, Pass@k training)"
    reads_rewards = False
    normalize: bool = param(True, "divide by the group std")

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        dev = work.device
        mean, var, count, const = dev.seg_mean_var(s, v, batch.order, batch.offsets, self.ddof)
        if np.any(count == 1):
            g = int(np.flatnonzero(count == 1)[0])
            raise InputError(
                f"estimator 'passk' needs at least 2 scorable rows per group; "
                f"{int((count == 1).sum())} groups have one (first: group #{g})"
            )
        top, second, arg = dev.seg_top2(s, v, batch.order, batch.offsets)
        with np.errstate(invalid="ignore"):  # empty groups: -inf - -inf, never used
            gap = top - second
        if self.normalize:
            gap = divide(gap, np.sqrt(var), self.eps, self.eps_mode)
        out = np.zeros_like(s)
        live = (arg >= 0) & (count > 1)
        into = work.placement  # the rows are few: place them in file order directly
        rows = arg[live] if into is None else into.rows(arg[live])
        out[rows] = np.where(const[live], 0.0, gap[live])
        return out if into is None else into.put(out)


@ESTIMATORS.register
@dataclass(frozen=True)
class MCGRPO(GroupScaled):
    """Median-centred GRPO: ``A = (s - median_g) / scale``.

    ``scale=group``: ``sigma_g`` with ``eps``, ``eps_mode`` and ``ddof``; ``scale=mad``:
    ``MAD_g + 1e-3`` (median absolute deviation, as the official code); ``none``: no
    division. Singleton group: 0, or ``s / (1 + eps)`` with ``singleton=raw``. Constant
    group: exactly 0.
    """

    name = "mc_grpo"
    source = "MC-GRPO (median-centred GRPO, official code)"
    reads_rewards = False
    scale: str = param("group", "group (sigma_g), mad (MAD_g + 1e-3), none", choices=("group", "mad", "none"))

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        o, off, codes = batch.order, batch.offsets, batch.codes
        med, mean, var, count, const = work.device.seg_median_mean_var(s, v, o, off, self.ddof)
        st = GroupStats(mean, np.sqrt(var), count, const)
        if self.scale == "group":
            shift, live, den = lone_rule(
                st, med, st.live, self.singleton, denominator(st.sigma, self.eps, self.eps_mode),
                denominator(1.0, self.eps, self.eps_mode),
            )
            return expand(s, v, batch, shift, live, work, den=den, into=work.placement)
        med = med[codes]
        c = s - med
        if self.scale == "mad":
            mad = work.device.seg_median(np.abs(c), v, o, off)[codes]
            a = c / (mad + 1e-3)
        else:
            a = c
        a = np.where(v & ~const[codes] & (count[codes] > 1), a, 0.0)
        eps = None if self.scale == "none" else (1e-3 if self.scale == "mad" else self.eps)
        mode = "add" if self.scale == "mad" else self.eps_mode
        return singleton_rule(a, s, v, count[codes], self.singleton, eps, mode)


@ESTIMATORS.register
@dataclass(frozen=True)
class G2RPO(Grouped):
    """Gaussian rank advantage: ``A = Phi^-1((rank - 0.5) / n_g)`` with ranks 1..n_g
    ascending within the group; tied rows share the mean of their positions' values, so a
    constant group gives exactly 0. Scale-free: no eps. A singleton gets
    ``Phi^-1(0.5) = 0`` under either singleton policy.
    """

    name = "g2rpo"
    source = "G^2RPO (Gaussian GRPO)"
    reads_rewards = False

    def compute(self, batch, work):
        # NaN on the unscorable rows, which the estimator call sets to 0 as it puts the
        # rows back in file order (writing file order from the ranking kernel measured slower)
        return work.device.seg_normal_scores(batch.scalar, batch.scorable, batch.order, batch.offsets,
                                             out=work.scratch("values", batch.n))


@ESTIMATORS.register
@dataclass(frozen=True)
class NGRPO(GroupScaled):
    """Negative-enhanced GRPO: the group's mean and std (``ddof``, default 1) are taken over
    its scorable rows plus one virtual row with reward ``r_max``; ``A = (s - mu') /
    (sigma' [+] eps)``. An all-wrong group still learns (G = 8 rewards of 0 with ``r_max
    = 1``: each ``-1/3``, ``-0.3333322`` with eps 1e-6). A group constant at ``r_max`` gives
    0. Singleton group: 0, or ``s / (1 + eps)`` with ``singleton=raw``.
    """

    name = "ngrpo"
    source = "NGRPO (Nan et al. 2025, negative-enhanced GRPO)"
    reads_rewards = False
    r_max: float = param(1.0, "reward of the virtual row (the best attainable reward)")

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        mean, var0, count, const = work.device.seg_mean_var(s, v, batch.order, batch.offsets, 0)
        n = count.astype(np.float64)
        m2 = var0 * n
        mu = mean + (self.r_max - mean) / (n + 1)
        ss = m2 + n * (mean - mu) ** 2 + (self.r_max - mu) ** 2
        dof = n + 1 - self.ddof
        sigma = np.sqrt(np.where(dof > 0, ss / np.where(dof > 0, dof, 1), 0.0))
        st = GroupStats(mean, sigma, count, const)
        shift, live, den = lone_rule(
            st, mu, (count > 1) & ~(const & (mean == self.r_max)), self.singleton,
            denominator(sigma, self.eps, self.eps_mode), denominator(1.0, self.eps, self.eps_mode),
        )
        return expand(s, v, batch, shift, live, work, den=den, into=work.placement)


@ESTIMATORS.register
@dataclass(frozen=True)
class PrefGRPO(GroupScaled):
    """Win-rate GRPO: each row's within-group win rate ``w_i = (#{j: s_j < s_i} + 0.5
    #{j != i: s_j = s_i}) / (n_g - 1)`` (its rank with ties sharing the mean rank, minus
    one, over ``n_g - 1``; exact: the counts are whole or half numbers), then grpo's z-score
    of ``w``: ``A = (w - mu_g(w)) / (sigma_g(w) [+] eps)`` (``ddof``, ``eps_mode``). Only
    the order of the scores within a group counts, not their spread. A constant group gives
    0; a singleton gives 0 under either singleton policy (there is no other row to win
    against: ``w = 0``, and ``raw`` gives ``0 / (1 + eps)``).
    """

    name = "pref_grpo"
    source = "Pref-GRPO (Wang et al. 2025: pairwise win rates in place of raw scores); here from scalar scores"
    reads_rewards = False

    def compute(self, batch, work):
        s, v = batch.scalar, batch.scorable
        rank = work.device.seg_rank(s, v, batch.order, batch.offsets)
        _, _, count, _ = work.device.seg_mean_var(s, v, batch.order, batch.offsets, 0)
        n = count[batch.codes].astype(np.float64)
        w = np.where(v & (n > 1), (rank - 1.0) / np.where(n > 1, n - 1.0, 1.0), 0.0)
        return group_z(w, v, batch, work, eps=self.eps, eps_mode=self.eps_mode, ddof=self.ddof,
                       singleton=self.singleton, into=work.placement)


@ESTIMATORS.register
@dataclass(frozen=True)
class DGPO(Estimator):
    """Difficulty-balanced GRPO: ``A = n_g (s - mu_g) / (sum_{j in g} |s_j - mu_g| + 1e-4) *
    v_g``, the centred score scaled by its group's mean absolute deviation, then weighted by
    difficulty: ``v_g = L softmax_g(-acc_g / T)`` over the ``L`` live groups of the training
    batch ``B`` (those where ``s`` varies; ``n_g`` and ``mu_g`` over the scorable rows),
    ``acc_g`` the group mean of the ``accuracy`` objective over its valid cells, with an
    accuracy of 0 (``|acc| <= 1e-8``), or none at all, counted as 1 (so unsolved groups are
    not the most weighted). With ``length_balance`` and a length
    column, also times ``sum_B len / sum_{rows of live groups} len``: the tokens of the
    groups that give no gradient are handed to the others. Dead groups get 0.
    """

    name = "dgpo"
    source = ("DGPO, 'Harder is Better' (AMAP-ML/MathForge: trl-0.20.0 grpo_trainer.py, enable_dgpo, "
              "enable_dgpo_dqw, dgpo_dqw_temp 2.0)")
    T: float = param(2.0, "temperature of the difficulty softmax")
    accuracy: str = param("", "objective whose group mean is the accuracy (empty: the first weighted objective)")
    length_balance: bool = param(True, "hand the tokens of dead groups to the live ones (needs --length)")

    def validate(self) -> None:
        super().validate()
        if not self.T > 0:
            raise UsageError(f"parameter 'T' of estimator 'dgpo' must be > 0, not {self.T:g}")

    def compute(self, batch, work):
        s, v, codes = batch.scalar, batch.scorable, batch.codes
        mean, _, count, const = work.device.seg_mean_var(s, v, batch.order, batch.offsets, 0)
        c = np.where(v, s - mean[codes], 0.0)
        spread = np.bincount(codes, weights=np.abs(c), minlength=count.shape[0])
        live = (count >= 2) & ~const
        acc = self._accuracy(batch)
        # an unsolved group counts as solved (the official code), and so does one without any accuracy value
        acc = np.where(np.isnan(acc) | (np.abs(acc) <= 1e-8), 1.0, acc)
        e = np.where(live, np.exp(-np.where(live, acc, 0.0) / self.T), 0.0)
        totals = [float(live.sum()), float(e.sum())]
        L = batch.length
        balance = self.length_balance and L is not None
        if balance:
            tokens = np.where(np.isfinite(L), L, 0.0)
            totals += [float(tokens.sum()), float(tokens[live[codes]].sum())]
        totals = work.tally("dgpo", Sums(tuple(totals))).values
        n_live, e_sum = totals[0], totals[1]
        weight = np.where(live, n_live * e / e_sum if e_sum > 0 else 0.0, 0.0)
        if balance and totals[3] > 0:
            weight = weight * (totals[2] / totals[3])
        return count[codes] * c / (spread[codes] + 1e-4) * weight[codes]

    def _accuracy(self, batch) -> np.ndarray:
        """Each group's mean of the accuracy objective over its scorable rows with a value
        (NaN for a group with none)."""
        names = list(batch.names)
        if self.accuracy:
            if self.accuracy not in names:
                raise UsageError(f"parameter 'accuracy' of estimator 'dgpo' names '{self.accuracy}', not an objective; "
                                 f"objectives: {', '.join(names)}")
            k = names.index(self.accuracy)
        else:
            weighted = np.flatnonzero(batch.weighted)
            k = int(weighted[0]) if weighted.size else 0
        x = batch.rewards[:, k]
        ok = batch.scorable & ~np.isnan(x)
        g = batch.offsets.shape[0] - 1
        n = np.bincount(batch.codes, weights=ok.astype(np.float64), minlength=g)
        total = np.bincount(batch.codes, weights=np.where(ok, x, 0.0), minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.where(n > 0, n, 1.0), np.nan)
