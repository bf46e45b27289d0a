"""Pictures: terminal visuals, the self-contained HTML report, and a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

import mocli
from mocli.render import terminal as render
from mocli.render.html import CHECK_SCRIPT, render_html

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "sample_data" / "math.parquet"
CHARTS = ["distributions", "conflict", "influence", "sign-flips", "scatter", "trends", "budget"]
ARTIFACTS = ROOT / "test-artifacts"


def test_terminal_visuals_on_a_terminal_only():
    analysis = mocli.analyze([MATH], by="step", figures=True)
    rep = analysis.report
    console = Console(record=True, width=140, force_terminal=True)
    console.print(render.rich_report(rep.to_dict(), "t", None, analysis.figures, show_visuals=True))
    text = console.export_text()
    assert "Advantage histograms" in text and "Discordance heatmap" in text and "Trends over step" in text
    assert re.search("[▁▂▃▄▅▆▇█]{5,}", text)
    plain = Console(record=True, width=140)
    plain.print(render.rich_report(rep.to_dict(), "t", None, analysis.figures, show_visuals=False))
    assert not re.search("[▂▃▄▅▆▇█]", plain.export_text())


def test_visuals_vanish_in_pipes_and_json(run_cli):
    code, out, _ = run_cli("analyze", MATH, "--by", "step")
    assert code == 0 and "Advantage histograms" not in out and not re.search("[▂▃▄▅▆▇█]", out)
    code, out, _ = run_cli("analyze", MATH, "--by", "step", "--format", "json")
    assert "histogram" not in out.lower()


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures, self.external, self.scripts, self.current = {}, [], 0, None
        self.stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.external.append(a[key])
        if tag == "link":
            self.external.append("<link>")
        if tag == "script":
            self.scripts += 1
        if tag == "figure":
            self.current = a["id"]
            self.figures[self.current] = {"h3": 0, "reading": 0, "svg": 0, "table": 0, "text": 0}
        elif self.current:
            f = self.figures[self.current]
            if tag == "h3":
                f["h3"] += 1
            if tag == "p" and a.get("class") == "reading":
                f["reading"] += 1
            if tag in ("svg", "table"):
                f[tag] += 1
            if tag == "text":
                f["text"] += 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self.current = None


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    from mocli.cli import main

    assert main(["report", str(MATH), "-o", str(out), "--length", "response_length"]) == 0
    return out


def test_html_report_has_every_chart_and_nothing_external(report_html):
    text = report_html.read_text()
    c = Collector()
    c.feed(text)
    assert list(c.figures) == CHARTS
    for name, f in c.figures.items():
        assert f["h3"] == 1 and f["reading"] == 1 and f["svg"] == 1 and f["table"] == 1, name
        assert f["text"] >= 4, name  # axis labels and ticks
    assert c.external == [] and c.scripts == 1
    assert "@import" not in text and "url(" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_html_without_slices_or_second_estimator_says_why():
    analysis = mocli.analyze([MATH], estimators=["grpo"], figures=True)
    text = render_html(analysis.report, fig=analysis.figures)
    assert 'id="trends"' in text and "no --by column" in text
    assert 'id="scatter"' in text and "needs two estimators" in text


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def in_browser(page: Path, tmp_path: Path, height: int = 4400) -> tuple[str, list[str]]:
    """The DOM of ``page`` after headless Chromium laid it out and ran its scripts, and the
    browser's command line (for a screenshot); a failure under CI when Chromium is
    missing, else a skip."""
    chrome = _chromium()
    if chrome is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on this machine")
    common = [chrome, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1280,{height}"]
    dom = subprocess.run(common + ["--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout, common


def test_report_renders_in_a_real_browser(report_html, tmp_path):
    dom, common = in_browser(report_html, tmp_path)
    url = report_html.resolve().as_uri()
    charts = re.search(r'data-charts="(\d+)"', dom)
    visible = re.search(r'data-charts-visible="(\d+)"', dom)
    assert charts and visible, "the page's layout check did not run"
    assert int(charts.group(1)) == len(CHARTS) and int(visible.group(1)) == len(CHARTS)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    run = subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a page of charts, not a blank


def test_notebooks_show_the_report_scoped_to_its_cell(tmp_path):
    analysis = mocli.analyze([MATH], estimators=["grpo", "gdpo"], by="step", figures=True)
    cell = analysis._repr_html_()
    whole = render_html(analysis.report, "mocli analyze", analysis.figures)
    assert cell.startswith('<div class="mocli-report">') and "<html" not in cell and "<script" not in cell
    assert [f'id="{c}"' in cell for c in CHARTS] == [True] * len(CHARTS)
    assert cell.count("<svg") == whole.count("<svg") and cell.count("<table") == whole.count("<table")
    style = re.search(r"<style>(.*?)</style>", cell, re.S).group(1)
    rules = [sel.strip() for sel in re.findall(r"([^{}]+)\{", style)]
    assert rules and all(sel.startswith(".mocli-report") for rule in rules for sel in rule.split(","))
    sweep_cell = mocli.sweep([MATH], samples=5)._repr_html_()
    assert sweep_cell.startswith('<div class="mocli-report">') and 'id="sweep"' in sweep_cell
    # in a browser, inside a page with a notebook's own style: every chart is laid out and
    # the page's own body style is left as it was
    page = ("<!DOCTYPE html><html><head><style>body{font-family:serif;margin:3px}</style></head><body>"
            f"{cell}{sweep_cell}<script>{CHECK_SCRIPT}</script></body></html>")
    probe = ("<script>window.addEventListener('load',function(){document.body.setAttribute('data-margin',"
             "getComputedStyle(document.body).marginTop);});</script>")
    path = tmp_path / "notebook.html"
    path.write_text(page.replace("</body>", probe + "</body>"))
    dom, _ = in_browser(path, tmp_path)
    n = len(CHARTS) + 1
    assert f'data-charts="{n}"' in dom and f'data-charts-visible="{n}"' in dom
    assert 'data-margin="3px"' in dom
