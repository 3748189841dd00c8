"""Start page of the Demystify web app (until the demos exist).

Run with `python build.py serve` (or `panel serve webapp/app.py`). Plain Panel layout,
no template: the page needs nothing beyond what `panel serve` itself serves, so it works
offline.
"""

from __future__ import annotations

import html

import panel as pn

pn.extension()

TITLE = "Demystify — deep learning you can touch"

DEMOS = [
    ("Digits", "Draw a digit and watch a small convolutional network read it, layer by layer."),
    ("CIFAR-10", "Classify photos into ten classes and see what the network attends to."),
    ("Movies", "Rate a few films and get recommendations from learned embeddings."),
    ("Art restoration", "Paint over damage in a painting and let a model inpaint it."),
    (
        "Playground",
        "Change one idea at a time (init, normalisation, residuals) and see why "
        "modern deep learning works.",
    ),
    ("Engine", "Look inside the engine: tensors, the autograd tape, CPU and WGSL GPU kernels."),
]

CARD_CSS = """
.demo-card {border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px;
            width: 280px; min-height: 120px; background: #fafbfc;}
.demo-card h3 {margin: 0 0 6px 0; font-size: 1.1em;}
.demo-card p {margin: 0 0 8px 0;}
.soon {font-size: 0.85em; color: #6e7781; font-style: italic;}
.badge {display: inline-block; border-radius: 12px; padding: 3px 12px; font-size: 0.9em;}
.badge-gpu {background: #dafbe1; color: #116329;}
.badge-cpu {background: #ddf4ff; color: #0a3069;}
.badge-off {background: #fff1e5; color: #953800;}
"""


def device_badge_html() -> str:
    """A badge naming the engine's default device, or why the engine is unavailable."""
    try:
        import engine

        device = engine.default_device()
        adapters = {d["name"]: d.get("adapter", "") for d in engine.devices()}
    except (ImportError, AttributeError) as exc:
        reason = html.escape(f"{type(exc).__name__}: {exc}")
        return f'<span class="badge badge-off" title="{reason}">engine unavailable</span>'
    except Exception as exc:  # a broken GPU driver must not take the start page down
        reason = html.escape(f"{type(exc).__name__}: {exc}")
        return f'<span class="badge badge-off" title="{reason}">engine error: {reason}</span>'
    adapter = html.escape(str(adapters.get(device, "")))
    label = f"engine device: {html.escape(str(device))}" + (f" ({adapter})" if adapter else "")
    css = "badge-gpu" if device == "gpu" else "badge-cpu"
    return f'<span class="badge {css}">{label}</span>'


def demo_card(name: str, description: str) -> pn.pane.HTML:
    return pn.pane.HTML(
        f'<div class="demo-card"><h3>{html.escape(name)}</h3>'
        f"<p>{html.escape(description)}</p>"
        f'<span class="soon">coming soon</span></div>',
        margin=8,
        stylesheets=[CARD_CSS],
    )


def start_page() -> pn.Column:
    intro = pn.pane.Markdown(
        "Live demos running on a small, real deep-learning engine written for this "
        "project: NumPy on the CPU, WGSL compute shaders on the GPU. Every number on "
        "these pages is computed by that engine, and its code is short enough to read.",
        sizing_mode="stretch_width",
    )
    return pn.Column(
        pn.pane.HTML(f"<h1>{html.escape(TITLE)}</h1>", margin=(0, 10)),
        pn.pane.HTML(device_badge_html(), margin=(0, 10), stylesheets=[CARD_CSS]),
        intro,
        pn.pane.Markdown("## Demos", margin=(0, 10)),
        pn.FlexBox(*(demo_card(n, d) for n, d in DEMOS)),
        sizing_mode="stretch_width",
        max_width=960,
    )


start_page().servable(title="Demystify")
