"""The CI gate: threshold expressions evaluated on an analyze report.

``PATH OP NUMBER`` with OP one of ``> >= < <= == !=``. Paths starting with ``input.``,
``objectives.``, ``conflict.`` or ``estimators.<label>.`` are absolute; any other path is
checked once per estimator. A path that does not exist is a usage error; a ``null`` value
fails no check but is listed."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence
from xml.sax.saxutils import escape, quoteattr

from ..errors import UsageError
from ..params import finite
from . import lookup, missing_key

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_EXPR = re.compile(r"^\s*(\S+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Expression:
    path: str
    op: str
    threshold: float
    text: str

    @classmethod
    def parse(cls, text: str) -> "Expression":
        m = _EXPR.match(text or "")
        if not m:
            raise UsageError(f"--fail-if '{text}' is not 'PATH OP NUMBER' with OP one of > >= < <= == !=")
        path, op, value = m.groups()
        threshold = finite(value, f"--fail-if '{text}': threshold")
        return cls(path, op, threshold, f"{path} {op} {value}")

    @classmethod
    def from_config(cls, entry: Any) -> "Expression":
        """A ``[[tool.mocli.check]]`` table: ``fail_if = "PATH OP NUMBER"``, or ``path``,
        ``op`` and ``value``."""
        if isinstance(entry, str):
            return cls.parse(entry)
        if isinstance(entry, dict):
            if "fail_if" in entry:
                return cls.parse(str(entry["fail_if"]))
            if {"path", "op", "value"} <= set(entry):
                return cls.parse(f"{entry['path']} {entry['op']} {entry['value']}")
        raise UsageError(
            f"check entry {entry!r} in the config needs fail_if = \"PATH OP NUMBER\" or path, op and value"
        )


@dataclass(frozen=True)
class Outcome:
    expression: Expression
    label: str  # estimator label, or "" for an absolute path
    path: str
    value: float | None
    failed: bool

    @property
    def status(self) -> str:
        return "null" if self.value is None else ("fail" if self.failed else "pass")

    def describe(self) -> str:
        who = f"{self.label}: " if self.label else ""
        shown = "null" if self.value is None else f"{self.value:.6g}"
        return f"{who}{self.path} = {shown} ({self.expression.text})"


def evaluate(report, expressions: Sequence[Expression]) -> list[Outcome]:
    """Every expression against the report: one outcome per expression and estimator."""
    if not expressions:
        raise UsageError("no --fail-if expression given (and no [[tool.mocli.check]] in the config)")
    doc = report.to_dict()
    out: list[Outcome] = []
    for expr in expressions:
        for label, path in report.expand(expr.path):
            try:
                value = _lookup(doc, path)
            except KeyError as exc:
                raise UsageError(_missing_path(doc, path, str(exc.args[0]), expr)) from None
            if isinstance(value, dict) or isinstance(value, (list, str)) or isinstance(value, bool):
                raise UsageError(f"--fail-if '{expr.text}': '{path}' is not a number; pick one of its keys")
            if value is None:
                out.append(Outcome(expr, label, path, None, False))
                continue
            out.append(Outcome(expr, label, path, float(value), bool(_OPS[expr.op](float(value), expr.threshold))))
    return out


def _lookup(doc, path):
    return lookup(doc, path)


def _missing_path(doc, path: str, missing: str, expr: Expression) -> str:
    return f"--fail-if '{expr.text}': {missing_key(doc, missing)}"


def failed(outcomes: Iterable[Outcome]) -> bool:
    return any(o.failed for o in outcomes)


def junit(outcomes: Sequence[Outcome]) -> str:
    """JUnit XML: one test case per expression and estimator."""
    n_fail = sum(o.failed for o in outcomes)
    n_skip = sum(o.value is None for o in outcomes)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites><testsuite name="mocli check" tests="{len(outcomes)}" failures="{n_fail}" skipped="{n_skip}">',
    ]
    for o in outcomes:
        name = quoteattr(f"{o.label + ': ' if o.label else ''}{o.expression.text}")
        lines.append(f'  <testcase classname="mocli.check" name={name}>')
        if o.failed:
            lines.append(f'    <failure message={quoteattr(o.describe())}>{escape(o.describe())}</failure>')
        elif o.value is None:
            lines.append(f'    <skipped message={quoteattr(o.path + " is null (empty denominator)")}/>')
        lines.append("  </testcase>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines) + "\n"


def summary_markdown(outcomes: Sequence[Outcome]) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``."""
    n_fail = sum(o.failed for o in outcomes)
    head = "### mocli check: " + (f"{n_fail} of {len(outcomes)} checks failed" if n_fail else f"all {len(outcomes)} checks passed")
    lines = [head, "", "| status | estimator | path | value | fails if |", "|---|---|---|---|---|"]
    for o in outcomes:
        value = "null" if o.value is None else f"{o.value:.6g}"
        mark = {"fail": "❌ fail", "pass": "✅ pass", "null": "⚪ null"}[o.status]
        lines.append(f"| {mark} | {o.label or '-'} | `{o.path}` | {value} | `{o.expression.op} {o.expression.threshold:g}` |")
    return "\n".join(lines) + "\n"


def annotations(outcomes: Sequence[Outcome]) -> str:
    """``::error::`` lines for GitHub Actions, one per failed check."""
    return "".join(f"::error title=mocli check::{o.describe()}\n" for o in outcomes if o.failed)
