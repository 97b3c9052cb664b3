"""The report in a real browser, as a person would use it: Playwright for Python driving
Debian's chromium (never a downloaded browser), the page opened from disk with every network
request aborted. No request but the file itself, no console error, every section drawn, every
slider moved and the numbers it shows checked against ``theory.py`` to 1e-9 relative, every
section's screenshot not blank.

The report is built from a store filled here in seconds with one tiny result of every kind:
duels under Adam and SGD, a cliff, the clipping demo, two trainings with profiles, the measured
decay against length and untrained profiles; the claims table lists the register's claims.
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bpttlab import theory
from bpttlab.environment import fingerprint
from bpttlab.experiments import (
    PROFILE_KIND,
    Budget,
    CliffConfig,
    ClippingConfig,
    DecayConfig,
    DuelConfig,
    ProfileConfig,
    Runner,
    Setting,
    cliff,
    clipping_demo,
    decay_vs_length,
    duel,
    profile_run,
)
from bpttlab.experiments.claims import CLAIMS
from bpttlab.store import Store, cached
from bpttlab.tour import analytic

pytest.importorskip("plotly", reason="the report needs the report extra (plotly)")
from bpttlab.views.report import render_report  # noqa: E402  (plotly present)

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the browser extra (playwright)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium); this test never "
    "downloads a browser",
)

TINY = Budget(steps=6, hidden_size=8, batch_size=16)
SECTIONS = ("decay", "saturation", "spectrum", "walks", "profiles", "training", "duel", "cliff",
            "clipping", "claims")  # fmt: skip
REL = 1e-9
# every claim of the register with its real command, so each row's links are checked; what the
# audit measures is tested in tests/experiments (the quick audit alone trains ~40 runs)
REGISTER = {"claims": [{"id": c.id, "lesson": c.lesson, "claim": c.claim, "command": c.command,
                        "measured": "not measured in this test", "verdict": "inconclusive",
                        "conditions": ""} for c in CLAIMS]}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report of a store holding one tiny result of every kind the report shows."""
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "runs.db"
    with Store(db) as store:
        runner = Runner(store=store, workers=1)
        for optimizer in ("adam", "sgd"):
            duel(DuelConfig(seeds=(0, 1), budget=TINY.replace(optimizer=optimizer)), runner)
        cliff(CliffConfig(lengths=(5, 10), seeds=(0, 1, 2), budget=TINY), runner)
        clipping_demo(ClippingConfig(steps=5, seeds=(0,)), runner)
        runner([TINY.replace(steps=20).run(a, 10, 0, profile_every=2) for a in ("rnn", "lstm")])
        decay_vs_length(DecayConfig(lengths=(5, 10), radii=(0.9, 1.1), seeds=(0,), hidden_size=8,
                                    batch_size=4, lyapunov_samples=1), runner)  # fmt: skip
        env = fingerprint()
        for arch in ("rnn", "lstm", "irnn"):
            c = ProfileConfig(**Setting.specs(arch, "copy-bit"), length=20, dtype="float64")
            cached(store, PROFILE_KIND, c, functools.partial(profile_run, c), env=env)
        page = render_report(store, analytic(0, lyapunov_hidden=32, lyapunov_length=150),
                             REGISTER, "full")  # fmt: skip
    path = tmp / "report.html"
    path.write_text(page.html, encoding="utf-8")
    return {"path": path, "bytes": path.stat().st_size, "sections": page.filled, "folder": tmp}


@pytest.fixture(scope="module")
def opened(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The report open in chromium, every request but the file's own aborted and recorded."""
    url = Path(report["path"]).resolve().as_uri()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        attempted: list[str] = []
        problems: list[str] = []

        def route(r: Any) -> None:
            if r.request.url == url:
                r.continue_()
            else:
                attempted.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: attempted.append(r.url) if r.url != url else None)
        page.goto(url)
        page.wait_for_selector("body[data-ready]", timeout=30_000)
        yield {"page": page, "attempted": attempted, "problems": problems}
        browser.close()


def check_quiet(opened: dict[str, Any]) -> None:
    assert opened["attempted"] == [], opened["attempted"]  # no request but the file's own
    assert opened["problems"] == [], opened["problems"]  # no console error, no page error


def shown(page: Any, table: str, key: str) -> str:
    return page.locator(f"#{table} td[data-key='{key}']").inner_text()


def number(text: str) -> float | None:
    return None if text in ("never", "—") or text.startswith("inf") else float(text)


def close(got: float | None, want: float | None) -> bool:
    if want is None or got is None:
        return got is want
    return got == want or abs(got - want) <= REL * abs(want)


def test_report_opens_offline_with_every_section_drawn(report, opened):
    page = opened["page"]
    check_quiet(opened)
    assert all(report["sections"].values()), report["sections"]
    assert 4_000_000 < report["bytes"] < 8_000_000  # plotly.js (4.8 MB) once, data thinned
    for sid in SECTIONS:
        sec = page.locator(f"section#{sid}")
        assert sec.count() == 1, sid
        assert sec.locator("p.empty").count() == 0, sid
        figures = sec.locator(".js-plotly-plot:visible")
        assert figures.count() >= (0 if sid == "claims" else 1), sid
        for i in range(figures.count()):
            assert figures.nth(i).locator(".main-svg").count() >= 1, (sid, i)
    rows = page.locator("section#claims table.claims tbody tr")
    assert rows.count() == len(CLAIMS)
    for i in range(rows.count()):  # every claim links to a section that exists
        links = rows.nth(i).locator("a.figlink")
        assert links.count() >= 1 or "keras" in rows.nth(i).inner_text()
        for k in range(links.count()):
            target = links.nth(k).get_attribute("href")
            assert target and page.locator(target).count() == 1, target


def test_decay_explorer_shows_theory_numbers(opened):
    page = opened["page"]
    settings = [
        ("0.9", "0.5", "3"),
        ("0.99", "0.9", "4.5"),
        ("1.1", "1", "3.5"),
        ("1.5", "1", "6"),
        ("0.05", "0.01", "1"),
        ("1", "1", "2"),
        ("0.7", "0.995", "5"),
    ]
    for lam, der, tmax in settings:
        page.locator("#decay-lambda").fill(lam)
        page.locator("#decay-derivative").fill(der)
        page.locator("#decay-tmax").fill(tmax)
        check_decay(page)
    page.locator("#decay-lambda").focus()  # and by keyboard, as a person would
    for key in ("ArrowRight", "ArrowRight", "ArrowLeft", "End"):
        page.keyboard.press(key)
        check_decay(page)
    check_quiet(opened)


def check_decay(page: Any) -> None:
    lam = float(page.locator("#decay-lambda").input_value())  # the values the script used
    der = float(page.locator("#decay-derivative").input_value())
    T = int(shown(page, "decay-readout", "T"))
    assert T == round(10 ** float(page.locator("#decay-tmax").input_value()))
    want = theory.decay(lam, der, [T])
    (row,) = want.rows
    got = {k: number(shown(page, "decay-readout", k)) for k in
           ("factor", "magnitude", "log10", "float32_underflow_at", "float64_underflow_at",
            "float32_overflow_at", "float64_overflow_at")}  # fmt: skip
    assert close(got["factor"], want.factor), (lam, der)
    assert shown(page, "decay-readout", "regime") == want.regime
    assert close(got["log10"], row.log10_magnitude), (lam, der, T)
    assert close(got["magnitude"], row.magnitude), (lam, der, T)
    for key in ("float32_underflow_at", "float64_underflow_at", "float32_overflow_at",
                "float64_overflow_at"):  # fmt: skip
        assert got[key] == getattr(want, key), (key, lam, der)


def test_saturation_explorer_shows_theory_numbers(opened):
    page = opened["page"]
    for z in ("-6", "-2.37", "0", "0.01", "1", "2", "3", "4.99", "6"):
        page.locator("#sat-z").fill(z)
        check_saturation(page)
    page.locator("#sat-z").focus()
    for key in ("ArrowLeft", "ArrowLeft", "Home", "ArrowRight"):
        page.keyboard.press(key)
        check_saturation(page)
    check_quiet(opened)


def check_saturation(page: Any) -> None:
    z = float(page.locator("#sat-z").input_value())
    assert float(shown(page, "sat-readout", "z")) == z
    for name in ("tanh", "sigmoid", "relu"):
        want = float(theory.activation_derivative(name, z))
        got = number(shown(page, "sat-readout", f"{name}_d"))
        assert close(got, want), (name, z, got, want)
        steps = shown(page, "sat-readout", f"{name}_steps")
        expected = theory.steps_to_threshold(want, 1e-6)
        assert (None if steps == "never" else int(steps)) == expected, (name, z)
        assert math.isfinite(want)


def test_pickers_switch_between_stored_results(opened):
    page = opened["page"]
    select = page.locator("select[data-pick='duel']")
    labels = select.locator("option").all_inner_texts()
    optimizers = [next(o for o in ("adam", "sgd") if f"{o} steps" in label) for label in labels]
    assert optimizers == ["adam", "sgd"]  # both duels offered, the lesson's (Adam) first
    blocks = page.locator(".choice[data-pick='duel']")
    assert blocks.nth(0).is_visible() and not blocks.nth(1).is_visible()
    select.select_option("1")
    assert blocks.nth(1).is_visible() and not blocks.nth(0).is_visible()
    title = blocks.nth(1).locator(".js-plotly-plot .gtitle")  # drawn when first shown
    assert f"{optimizers[1]} steps" in (title.text_content() or "")
    check_quiet(opened)


def test_screenshots_of_every_section_are_not_blank(report, opened):
    from PIL import Image, ImageStat

    page = opened["page"]
    for sid in SECTIONS:
        path = report["folder"] / f"{sid}.png"
        page.locator(f"section#{sid}").screenshot(path=str(path))
        image = Image.open(path).convert("L")
        assert image.width > 600 and image.height > 200, sid
        assert ImageStat.Stat(image).stddev[0] > 10, sid  # text and plots, not one colour
        assert len(image.getcolors(maxcolors=256) or []) > 30, sid  # greys in use
    check_quiet(opened)
