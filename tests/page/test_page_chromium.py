"""The report page as a person sees it: recorded runs rendered, opened in headless Chromium.

Each case replays a run recorded from the real tool against the lab (``tests/data/runs``,
see ``record_runs.py``) into a fresh ledger through its public API, writes the page with
``invoke report --html`` (the real CLI, in a subprocess) or the renderer, opens it in
Chromium, keeps a screenshot in the artifacts directory (printed at the end of the run), and
checks what is on the page and that the browser logged nothing (no script error, nothing
blocked by the page's no-load policy).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rollout.charts import metric_chart
from rollout.clock import PartsClock
from rollout.evidence import gather
from rollout.htmlreport import write_html
from rollout.ledger import Ledger, RunStatus

from .browser import DOM, Opened, chromium, open_page
from .recorded import load, replay

REPO = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (scripts/bootstrap.sh installs it)"
)


def _cli_page(
    name: str, tmp_path: Path, artifacts: Path, height: int
) -> tuple[Opened, DOM, dict[str, Any], Ledger]:  # noqa: E501
    """Replay recording ``name``, render it with `invoke report --html`, open it in Chromium."""
    data = load(name)
    ledger, run_id = replay(data, tmp_path / "ledger.db")
    inventory = tmp_path / "inventory.yml"  # named as the recording's fleet, by rollout_fleet
    fleet = data["run"]["inventory"]
    inventory.write_text(
        f"all:\n  vars:\n    rollout_fleet: {fleet}\n  hosts:\n    h1: {{}}\n    h2: {{}}\n"
        "    h3: {}\n"
    )
    page = artifacts / f"{name}.html"
    ran = subprocess.run(
        [INVOKE, "report", "--html", str(page), "--inventory", str(inventory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ROLLOUT_LEDGER": str(tmp_path / "ledger.db")},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"wrote the report page of run {run_id}" in ran.stdout
    opened = open_page(page, artifacts / f"{name}.png", height=height)
    print(f"screenshot: {opened.screenshot}")
    assert opened.console == (), opened.console
    return opened, DOM(opened.dom), data, ledger


def _samples(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in data["events"] if e["kind"] == "sample"]


def _self_contained(dom: DOM) -> None:
    assert not dom.find("script"), "the page must run no script"
    for node in dom.nodes:
        for key, value in node.attrs.items():
            assert not key.startswith("on"), (node.tag, key)
            if key in ("src", "href", "xlink:href"):
                raise AssertionError(f"the page must load nothing: {node.tag} {key}={value}")


def test_breach_page_shows_the_breach_on_the_right_host_at_the_right_time(
    tmp_path: Path, artifacts: Path
) -> None:
    """The breach run's page marks h2's error_rate breach at the recorded sample's time and
    the automatic rollback after it, in the chart, the headline and the host table."""
    opened, dom, data, ledger = _cli_page("breach", tmp_path, artifacts, 4200)
    _self_contained(dom)
    first = next(e for e in _samples(data) if e["data"]["data"]["verdict"] == "breach")
    assert first["data"]["data"]["values"]["h2"]["error_rate"] == 7.5
    assert dom.find("span", id="status")[0].text == "Rolled back"
    headline = dom.find("div", id="headline")[0].text
    assert headline.startswith("Breach on h2: error_rate = 7.5%"), headline
    assert "automatic rollback to phase 2" in headline
    chart = next(n for n in dom.find("div", cls="metric") if n.attrs["data-metric"] == "error_rate")
    index = dom.nodes.index(chart)
    nxt = next(
        n
        for n in dom.nodes[index + 1 :]
        if n.tag == "div" and "metric" in n.attrs.get("class", "").split()
    )
    inside = dom.nodes[index : dom.nodes.index(nxt)]
    marked = [n for n in inside if n.tag == "b" and "breach-host" in n.attrs.get("class", "")]
    assert [(n.text, float(n.attrs["data-ts"])) for n in marked] == [("h2", first["ts"])]
    breaches = [n for n in inside if n.tag == "circle" and n.attrs.get("class") == "breach"]
    assert len(breaches) == 2  # the two breached rounds, both on h2
    # the dots sit where the chart puts the recorded breach times
    ev = gather(ledger)
    series = next(s for s in ev.series if s.metric == "error_rate")
    chart_geo = metric_chart(
        series, ev.start, ev.end, rollback=ev.rollback.ts if ev.rollback else None
    )
    assert sorted(float(n.attrs["cx"]) for n in breaches) == sorted(d.x for d in chart_geo.dots)
    assert chart_geo.dots[0].title.startswith("h2: error_rate = 7.5%")
    rollback = next(e for e in data["events"] if e["kind"] == "rollback")
    assert rollback["ts"] >= first["ts"]
    vlines = {
        n.attrs["class"]: float(n.attrs["x1"])
        for n in inside
        if n.tag == "line" and n.attrs.get("class", "").startswith("v")
    }
    assert vlines["vbreach"] < vlines["vrollback"]
    # every other metric held: no breach dot outside error_rate
    assert len([n for n in dom.find("circle", cls="breach")]) == 2
    h2 = dom.find("tr", data_host="h2")[0]
    assert "bad" in h2.attrs["class"].split()
    assert {r.attrs["data-host"] for r in dom.find("tr") if "data-host" in r.attrs} == {
        "h1",
        "h2",
        "h3",
    }
    assert "AUTOMATIC ROLLBACK to Phase 2" in dom.text
    assert ledger.run(ev.run.id).status is RunStatus.ROLLED_BACK


def test_clean_soak_page_shows_every_round_healthy(tmp_path: Path, artifacts: Path) -> None:
    """A clean soak's page says Succeeded, counts every healthy round, and marks no breach,
    no rollback and no inconclusive sample."""
    opened, dom, data, _ledger = _cli_page("clean", tmp_path, artifacts, 3400)
    _self_contained(dom)
    rounds = len(_samples(data))
    assert dom.find("span", id="status")[0].text == "Succeeded"
    assert dom.find("div", id="headline")[0].text == (
        f"{rounds} health round(s), {rounds} healthy, no breach"
    )
    assert not dom.find("circle", cls="breach")
    assert not dom.find("rect", cls="inconclusive")
    assert not dom.find("line", cls="vrollback")
    assert len(dom.find("div", cls="metric")) == 5  # one chart per health metric
    assert len(dom.find("path", cls="threshold")) == 5
    assert len(dom.find("path", cls="series")) == 5 * 3  # every host drawn in every chart


def test_report_html_json_prints_one_schema_valid_line(tmp_path: Path) -> None:
    """`report --html FILE --json` prints exactly one report.html line that the events schema
    accepts, naming the latest run and the file it wrote."""
    import json

    import jsonschema

    data = load("clean")
    ledger, run_id = replay(data, tmp_path / "ledger.db")
    inventory = tmp_path / "inventory.yml"
    fleet = data["run"]["inventory"]
    inventory.write_text(f"all:\n  vars:\n    rollout_fleet: {fleet}\n  hosts:\n    h1: {{}}\n")
    page = tmp_path / "out" / "page.html"
    ran = subprocess.run(
        [INVOKE, "report", "--html", str(page), "--json", "--inventory", str(inventory)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ROLLOUT_LEDGER": str(tmp_path / "ledger.db")},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (line,) = ran.stdout.splitlines()
    event = json.loads(line)
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    jsonschema.validate(event, schema)
    assert (event["event"], event["run"], event["path"]) == ("report.html", run_id, str(page))
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_inconclusive_soak_page_marks_samples_without_value(
    tmp_path: Path, artifacts: Path
) -> None:
    """The inconclusive soak's page marks each round where a host had no usable value (h3's
    text error_rate, h1's restart), names why, and shows h1's drift repair."""
    opened, dom, data, _ledger = _cli_page("inconclusive", tmp_path, artifacts, 3400)
    _self_contained(dom)
    samples = _samples(data)
    bad = [e for e in samples if e["data"]["data"]["verdict"] == "inconclusive"]
    nan_rounds = [
        e
        for e in bad
        if "error" not in e["data"]["data"]["values"]["h3"]
        and not isinstance(e["data"]["data"]["values"]["h3"]["error_rate"], float)
    ]
    assert len(bad) >= 2 and nan_rounds
    chart = next(n for n in dom.find("div", cls="metric") if n.attrs["data-metric"] == "error_rate")
    start = dom.nodes.index(chart)
    marks = [
        n for n in dom.nodes[start:] if n.tag == "rect" and n.attrs.get("class") == "inconclusive"
    ]
    titles = [n.text for n in marks][: len(bad)]
    assert len(titles) == len(bad)
    assert sum("h3: not a number" in t for t in titles) == len(nan_rounds), titles
    assert dom.find("span", id="status")[0].text == "Succeeded"
    assert f"{len(bad)} inconclusive" in dom.find("div", id="headline")[0].text
    h1 = dom.find("tr", data_host="h1")[0]
    assert h1 is not None
    assert "re-applied and verified" in dom.text
    assert not dom.find("circle", cls="breach")


HOSTILE_HOST = '<img src=x onerror="document.title=1">h"\'\x1b[31m'
HOSTILE_REASON = "</title><script>document.title='pwned'</script>\x07\u202e"
HOSTILE_FLAG = "<svg onload=alert(1)>flag"


def test_hostile_values_render_as_text(tmp_path: Path, artifacts: Path) -> None:
    """A reason, host name and flag name holding markup, quotes and control characters show
    up as visible text: no element, attribute or script comes from them."""
    clock = [1_800_000_000.0]
    ledger = Ledger(tmp_path / "ledger.db", clock=PartsClock(wall=lambda: clock[0]),
                    who="<b>mallory</b>")  # fmt: skip
    run = ledger.start_run(
        "prod", f"invoke deploy --reason {HOSTILE_REASON}", ["x"], HOSTILE_REASON
    )

    def at(
        dt: float,
        kind: str,
        message: str,
        host: str | None = None,
        ok: bool | None = None,
        **data: object,
    ) -> None:
        clock[0] = 1_800_000_000.0 + dt
        ledger.event(
            run.id,
            kind,
            {"ts": clock[0], "event": kind, "message": message, "ok": ok, "data": data},
            host=host,
        )

    at(0, "run.start", "deploy on 2 host(s)")
    at(
        1,
        "host.verify",
        f"verified {HOSTILE_FLAG}=true",
        HOSTILE_HOST,
        True,
        phase=1,
        flags={HOSTILE_FLAG: True},
    )
    for i in range(4):
        value = 9.0 if i >= 2 else 1.0
        at(
            2 + i,
            "sample",
            HOSTILE_REASON,
            ok=value < 5,
            verdict="breach" if value > 5 else "healthy",
            values={HOSTILE_HOST: {"error_rate": value}, "ok-host": {"error_rate": 1.0}},
            thresholds={"error_rate": "error_rate > 5%"},
        )
    at(6, "drift", f"drifted: {HOSTILE_FLAG} off -> on", HOSTILE_HOST, False)
    at(
        7,
        "rollback",
        f"AUTOMATIC ROLLBACK to Phase 0: {HOSTILE_REASON}",
        ok=False,
        target=0,
        reason=HOSTILE_REASON,
    )
    ledger.set_paused("prod", True, HOSTILE_HOST, HOSTILE_REASON)
    clock[0] += 1
    ledger.finish_run(run.id, RunStatus.ROLLED_BACK, HOSTILE_REASON)
    page = write_html(gather(ledger, run.id), artifacts / "hostile.html")
    opened = open_page(page, artifacts / "hostile.png", height=2600)
    print(f"screenshot: {opened.screenshot}")
    assert opened.console == (), opened.console
    dom = DOM(opened.dom)
    _self_contained(dom)
    assert not dom.find("img") and not dom.find("b", onerror="x")
    assert [n for n in dom.nodes if n.tag == "svg" and "onload" in n.attrs] == []
    title = dom.find("title")[0].text
    assert title.startswith("Rolled back · invoke deploy --reason </title><script>"), title
    assert "\x1b" not in opened.dom and "\x07" not in opened.dom and "\u202e" not in opened.dom
    assert '<img src=x onerror="document.title=1">h"\'\\x1b[31m' in dom.text
    assert "<script>document.title='pwned'</script>\\x07\\u202e" in dom.text
    assert HOSTILE_FLAG in dom.text
    assert dom.find("tr", data_host='<img src=x onerror="document.title=1">h"\'\\x1b[31m')
    breach = dom.find("b", cls="breach-host")[0]
    assert breach.text.startswith("<img src=x")


def _fleet(path: Path, hosts: int, polls: int, bad: int, breach_from: int) -> tuple[Ledger, str]:
    """A soak of ``hosts`` hosts through the ledger API; host ``bad`` breaches from a poll on."""
    clock = [1_800_000_000.0]
    ledger = Ledger(path, clock=PartsClock(wall=lambda: clock[0]))
    run = ledger.start_run("fleet", "invoke deploy --phase 3", [], None)
    names = [f"app-{i:03d}" for i in range(hosts)]
    for p in range(polls):
        clock[0] += 30
        values = {
            n: {"error_rate": 0.5 + (i % 17) / 10, "average_response_time": 40.0 + i % 23}
            for i, n in enumerate(names)
        }
        if p >= breach_from:
            values[names[bad]]["error_rate"] = 8.0
        if p == 3:
            values[names[7]] = {"error": "console did not answer within 10s"}
        verdict = "breach" if p >= breach_from else "inconclusive" if p == 3 else "healthy"
        ledger.event(
            run.id,
            "sample",
            {
                "event": "sample",
                "message": verdict,
                "ok": verdict == "healthy",
                "data": {
                    "verdict": verdict,
                    "values": values,
                    "thresholds": {
                        "error_rate": "error_rate > 5%",
                        "average_response_time": "average_response_time > 100ms",
                    },
                },
            },
        )
    for n in names:
        ledger.event(
            run.id,
            "host.verify",
            {
                "event": "host.verify",
                "message": "verified at Phase 2",
                "ok": True,
                "data": {"phase": 2},
            },
            host=n,
        )
    clock[0] += 1
    ledger.finish_run(run.id, RunStatus.ROLLED_BACK, "breach")
    return ledger, run.id


def test_hundreds_of_hosts_summarise_median_and_worst(tmp_path: Path, artifacts: Path) -> None:
    """With 300 hosts each chart draws the median and the worst host over a band of all hosts,
    the breaching host leads the table of hosts that need a look, and the page stays small."""
    ledger, run_id = _fleet(tmp_path / "ledger.db", hosts=300, polls=40, bad=123, breach_from=30)
    started = time.monotonic()
    page = write_html(gather(ledger, run_id), artifacts / "fleet-300.html")
    took = time.monotonic() - started
    assert took < 10, took
    assert page.stat().st_size < 3_000_000, page.stat().st_size
    opened = open_page(page, artifacts / "fleet-300.png", height=2600)
    print(f"screenshot: {opened.screenshot} (rendered in {took:.2f}s, {page.stat().st_size} bytes)")
    assert opened.console == (), opened.console
    dom = DOM(opened.dom)
    error_rate = [n for n in dom.find("path", cls="series")]
    labels = [n.attrs["data-host"] for n in error_rate]
    # the breached metric's chart comes first
    assert labels == [
        "median of 300 hosts",
        "worst host: app-123",
        "median of 300 hosts",
        "worst host: app-022",
    ], labels
    assert len(dom.find("polygon", cls="band")) == 2
    attention = dom.find("table", id="hosts-attention")
    assert attention
    rows = [n.attrs["data-host"] for n in dom.nodes if n.tag == "tr" and "data-host" in n.attrs]
    assert rows[:2] == ["app-123", "app-007"], rows[:5]
    assert len([r for r in rows if r == "app-123"]) == 2  # in the attention table and in all
    assert len(set(rows)) == 300
