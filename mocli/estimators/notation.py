"""The symbols the estimators' docstrings use, defined once: docs/estimators.md shows them
above the estimators (generated), and each module's docstring points here."""

from __future__ import annotations

NOTATION: tuple[tuple[str, str], ...] = (
    ("s", "the scheme's score of a row (`weighted_sum` of the objectives by default; a dump's logged "
          "scalar, such as verl's `score`, when there is one)"),
    ("A", "the advantage of a row; unscorable rows (every weighted objective NaN) always get 0"),
    ("g", "a group: the rows of one prompt (within one training batch)"),
    ("mu_g, sigma_g", "mean and standard deviation (`ddof`) of `s` over the scorable rows of group `g`"),
    ("n_g", "the number of scorable rows of group `g`"),
    ("B", "the training batch: each value of `--batch-by`, the step of a framework's dump, else the whole "
          "table (under `--by`, its part in the slice)"),
    ("r_ik, w_k", "objective `k`'s reward of row `i` (after the NaN policy, conditions and direction) "
                  "and its weight"),
    ("mu_gk, sigma_gk", "mean and standard deviation of objective `k` over the rows of group `g` where it is valid"),
    ("z_ik", "objective `k`'s own group z-score `(r_ik - mu_gk) / (sigma_gk [+] eps)` over the scorable rows "
             "where `r_ik` is valid; 0 where `r_ik` is NaN, where `k` is constant in the group, and "
             "(`singleton=zero`) where the group has one valid value of `k` (`singleton=raw`: "
             "`r_ik / (1 + eps)`); only weighted objectives enter"),
    ("[+] eps", "the denominator's rule of `eps_mode`: `add` sigma + eps, `floor` max(sigma, eps), "
                "`skip_zero` sigma + eps where sigma > 0, else 1; a zero denominator is 1"),
)


def markdown() -> list[str]:
    """The notation as a Markdown table."""
    lines = ["| symbol | meaning |", "|---|---|"]
    lines += [f"| `{symbol}` | {meaning} |" for symbol, meaning in NOTATION]
    return lines
