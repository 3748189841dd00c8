"""The Sequences page in a real browser, served by `python -m webapp.server`: it loads
cleanly and offline, a drawn digit is read by the shipped models, both experiments train
live and a sequence over the page's limit is refused with the limit."""

from __future__ import annotations

import pytest

from tests import test_webapp_browser as wb

# the browser tests' fixtures (server, browser, visit) and helpers, shared
server, browser, visit = wb.server, wb.browser, wb.visit
draw, text_of, wait_text = wb.draw, wb.text_of, wb.wait_text

pytestmark = pytest.mark.browser


def test_sequences_reads_a_drawing_and_trains_both_experiments(visit):
    v = visit("/sequences?digits=200&epochs=1&hidden=16&length=12&steps=50")
    page = v.page
    page.locator("canvas.dc-canvas").first.wait_for()
    draw(page, [(150, 40), (145, 240)])  # a 1
    result = wait_text(page, ".rows-result", r"LSTM.*attention", timeout_s=60)
    assert "shipped" in result and "train one here" in result  # no RNN shipped
    assert result.count("1") >= 2, result
    page.locator(".adding-train button").click()
    done = wait_text(page, ".adding-status", r"finished|failed|cancelled", timeout_s=240)
    assert "finished" in done, done
    table = text_of(page, ".adding-results")
    for run in ("RNN", "RNN + clipping", "LSTM", "LSTM + clipping"):
        assert run in table, table
    page.locator(".rows-train button").click()
    done = wait_text(page, ".rows-status", r"finished|failed|cancelled", timeout_s=240)
    assert "finished" in done and "attention" in done, done
    wait_text(page, ".rows-result", r"trained here", timeout_s=30)
    v.check("sequences")


def test_sequences_refuses_a_sequence_over_the_limit(visit):
    v = visit("/sequences?length=5000")
    page = v.page
    page.locator(".adding-train button").click()
    err = wait_text(page, ".adding-error", r"limit of 300", timeout_s=30)
    assert "sequence length 5000" in err
    v.check("sequences_limit")
