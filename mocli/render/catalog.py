"""What is available: estimators, schemes and profiles with their parameters, defaults,
formulas and sources, read from the dataclass fields and docstrings. ``mocli estimators``,
``mocli schemes``, ``mocli profiles`` and ``docs/estimators.md`` are all made from here
(regenerate the page with ``python -m mocli.render.catalog > docs/estimators.md``)."""

from __future__ import annotations

import inspect
import math
from typing import Any

from ..estimators import ESTIMATORS
from ..estimators.notation import markdown as notation_markdown
from ..params import fields_of
from ..profiles import PROFILES
from ..schemes import SCHEMES


def _default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _params(cls) -> list[dict[str, Any]]:
    out = []
    for f in fields_of(cls):
        kind = f.metadata["type"]
        out.append({
            "name": f.name,
            "type": kind.__name__,
            "default": _default(f.default),
            "choices": list(f.metadata["choices"]) if f.metadata["choices"] else None,
            "help": f.metadata["help"],
        })
    return out


def _entry(name: str, cls) -> dict[str, Any]:
    doc = inspect.getdoc(cls) or ""
    return {
        "name": name,
        "summary": doc.split("\n\n")[0].replace("\n", " "),
        "doc": doc,
        "source": getattr(cls, "source", ""),
        "params": _params(cls),
    }


def estimators() -> list[dict[str, Any]]:
    out = []
    for name, cls in ESTIMATORS:
        e = _entry(name, cls)
        e["kind"] = "decoupled" if getattr(cls, "decoupled", False) else "scalar"
        out.append(e)
    return out


def schemes() -> list[dict[str, Any]]:
    return [_entry(name, cls) for name, cls in SCHEMES]


def profiles() -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "summary": p.summary,
            "source": p.source,
            "defaults": dict(p.defaults),
            "overrides": {k: dict(v) for k, v in p.overrides.items()},
        }
        for _, p in PROFILES
    ]


def format_value(value: Any) -> str:
    if value is None:
        return "(same as eps)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value == "":
        return '""'
    return f"{value}" if not isinstance(value, float) else f"{value:g}"


def _param_table(params: list[dict[str, Any]]) -> list[str]:
    if not params:
        return ["No parameters."]
    lines = ["| parameter | default | accepted | meaning |", "|---|---|---|---|"]
    for p in params:
        accepted = ", ".join(p["choices"]) if p["choices"] else p["type"]
        lines.append(f"| `{p['name']}` | `{format_value(p['default'])}` | {accepted} | {p['help']} |")
    return lines


def markdown(kind: str) -> str:
    lines: list[str] = []
    if kind == "profiles":
        lines += ["## Profiles", ""]
        for p in profiles():
            lines += [f"### `{p['name']}`", "", p["summary"] + ".", "", f"Source: {p['source']}.", ""]
            lines.append("Defaults: " + ", ".join(f"`{k}={format_value(v)}`" for k, v in p["defaults"].items()) + ".")
            for est, vals in p["overrides"].items():
                lines.append(f"For `{est}`: " + ", ".join(f"`{k}={format_value(v)}`" for k, v in vals.items()) + ".")
            lines.append("")
        return "\n".join(lines)
    entries = estimators() if kind == "estimators" else schemes()
    lines += [f"## {kind.capitalize()}", ""]
    for e in entries:
        title = f"### `{e['name']}`" + (f" ({e['kind']})" if "kind" in e else "")
        lines += [title, "", e["doc"], "", f"Source: {e['source']}.", ""]
        lines += _param_table(e["params"]) + [""]
    return "\n".join(lines)


RECIPES = """## Recipes: methods that are compositions

Some published methods need no estimator of their own: a condition (`--when`) and an
existing estimator make them.

* **DRPO-style length reward among correct answers only.** With
  `-e gdpo --when 'length_reward:correct_reward>=1:nan'`, a wrong answer's length reward
  becomes NaN (not applicable), so gdpo z-scores the length reward over the correct
  answers of each group alone; a wrong answer gets nothing from it (its z is 0) and is
  judged on correctness only. Without `:nan` the wrong answers would enter the length
  statistics as 0 and shift the mean the correct answers are compared with.
* **Posterior-GRPO: the process reward counts only when the outcome is right.** With
  `-e grpo --when 'process_reward:correct_reward>=1'`, the process reward of a wrong
  answer is replaced by 0 before the rewards are summed, so reasoning is rewarded only
  on a correct outcome (`s = r_outcome + r_process * 1[correct]`), then grpo's z-score."""


def reference_markdown() -> str:
    head = [
        "# Estimators, schemes and profiles",
        "",
        "Generated from the docstrings and parameter fields by `python -m mocli.render.catalog`;",
        "a test fails when this page and the code disagree. Write any parameter as",
        "`NAME:key=value,key=value` (`-e gdpo:eps=1e-4,batch_norm=false`).",
        "",
    ]
    notation = ["## Notation", "", *notation_markdown(), ""]
    return ("\n".join(head) + "\n" + "\n".join(notation) + "\n" + markdown("estimators") + "\n" + RECIPES + "\n\n"
            + markdown("schemes") + "\n" + markdown("profiles"))


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
