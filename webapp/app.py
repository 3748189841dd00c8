"""Start page of the Demystify web app: the demos, and which device the engine uses.

Serve every page with `python build.py serve` (or `python -m webapp.server`);
`panel serve webapp/app.py` serves this page alone.
"""

from __future__ import annotations

import html

import panel as pn

from webapp.common import CSS, PAGES, device_badge, is_embed

TITLE = "Demystify — deep learning you can touch"

CARD_CSS = """
.demo-card {display: block; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px;
            width: 280px; min-height: 120px; text-decoration: none; color: inherit;}
.demo-card:hover {border-color: #1f6feb;}
.demo-card h3 {margin: 0 0 6px 0; font-size: 1.1em;}
.demo-card p {margin: 0 0 8px 0;}
"""


def demo_card(slug: str, name: str, description: str) -> pn.pane.HTML:
    return pn.pane.HTML(
        f'<a class="demo-card" href="./{slug}"><h3>{html.escape(name)}</h3>'
        f"<p>{html.escape(description)}</p></a>",
        margin=8, stylesheets=[CARD_CSS],
    )


class StartPage(pn.viewable.Viewer):
    """The list of demos with the device badge."""

    def __panel__(self) -> pn.viewable.Viewable:
        intro = pn.pane.Markdown(
            "Live demos running on a small, real deep-learning engine written for this "
            "project: NumPy on the CPU, WGSL compute shaders on the GPU. Every number on "
            "these pages is computed by that engine, and its code is short enough to read.",
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.pane.HTML(f"<h1>{html.escape(TITLE)}</h1>", margin=(0, 10)),
            device_badge(),
            intro,
            pn.pane.Markdown("## Demos", margin=(0, 10)),
            pn.FlexBox(*(demo_card(s, n, d) for s, n, d in PAGES)),
            sizing_mode="stretch_width",
            max_width=960,
            stylesheets=[CSS],
        )


def page() -> pn.viewable.Viewable:
    if is_embed():
        return StartPage()
    return pn.template.BootstrapTemplate(title="Demystify", main=[StartPage()])


if __name__.startswith("bokeh"):
    page().servable(title="Demystify")
