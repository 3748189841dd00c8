"""Movies: rate a few films, get recommendations from the shipped factorization machine."""

from __future__ import annotations

import html
import json

import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from webapp.common import CSS, MODELS, error_alert, once, shell, show_error

STARS = ["1 ★", "2 ★★", "3 ★★★", "4 ★★★★", "5 ★★★★★"]
N_RECS = 10

TABLE_CSS = """
table.recs {border-collapse: collapse; width: 100%;}
table.recs td, table.recs th {padding: 4px 8px; border-bottom: 1px solid #d0d7de;
                              text-align: left; vertical-align: top;}
table.recs .why {font-size: 0.85em; opacity: 0.8;}
ul.rated-list {margin: 4px 0; padding-left: 18px;}
"""


@once
def fm() -> object:
    from engine.fm import FactorizationMachine

    return FactorizationMachine.load(MODELS / "fm_movielens.npz")


@once
def catalogue() -> tuple[dict[int, dict], list[int]]:
    """({movie id: {title, year, genres}}, ids ordered by number of training ratings)."""
    movies = {int(m["id"]): m for m in json.loads((MODELS / "movies.json").read_text())}
    f = fm().features
    counts = dict(zip((int(i) for i in f.movie_ids), (int(c) for c in f.movie_counts)))
    order = sorted(movies, key=lambda i: -counts.get(i, 0))
    for i in movies:
        movies[i]["count"] = counts.get(i, 0)
    return movies, order


@once
def movie_map() -> dict[str, list]:
    """2-D map of the movies' factor vectors (PCA), with titles for the hover."""
    from engine.explain import pca_2d

    movie_ids, factors = fm().movie_factors()
    xy = pca_2d(factors)
    movies, _ = catalogue()
    ids = [int(i) for i in movie_ids]
    return {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "id": ids,
            "title": [label(movies[i]) if i in movies else str(i) for i in ids]}


def label(m: dict) -> str:
    return f"{m['title']} ({m['year']})" if m.get("year") else m["title"]


def because(model: object, ratings: dict[int, float], movie_id: int, movies: dict) -> str:
    """A short reason: the liked film closest in taste, and the strongest feature."""
    liked = {m for m, r in ratings.items() if r >= 4} or set(ratings)
    near = [(m, s) for m, s in model.similar(movie_id, k=len(movies)) if m in liked]
    parts = []
    if near:
        parts.append(f"you liked {html.escape(label(movies[near[0][0]]))}")
    for name, share in model.explain(ratings, movie_id, top=6):
        if share <= 0 or name.startswith(("movie=", "you", "rated")):
            continue
        key, _, value = name.partition("=")
        parts.append(f"{html.escape(key)}: {html.escape(value)}" if value else html.escape(name))
        break
    return "because " + "; ".join(parts) if parts else ""


class MoviesPage(pn.viewable.Viewer):
    """Search and rate films; recommendations update with a reason and a map."""

    ratings = param.Dict(default={}, doc="{movie id: stars}")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        movies, order = catalogue()
        self.movies, self.order = movies, order
        self.error = error_alert()
        self.search = pn.widgets.TextInput(label="Search titles", placeholder="e.g. star wars",
                                           width=300)
        self.choice = pn.widgets.Select(label="Film", options=self._matches(""), size=8,
                                        width=300, css_classes=["film-choice"])
        self.stars = pn.widgets.RadioButtonGroup(label="Stars", options=STARS, value=STARS[4],
                                                 color="light")
        self.rate = pn.widgets.Button(label="Rate", color="primary", width=100,
                                      css_classes=["rate-button"])
        self.clear = pn.widgets.Button(label="Clear ratings", width=120)
        self.rated = pn.pane.HTML("", stylesheets=[CSS, TABLE_CSS], css_classes=["rated"])
        self.recs = pn.pane.HTML("<p class='muted'>Rate a few films to get recommendations."
                                 "</p>", stylesheets=[CSS, TABLE_CSS], css_classes=["recs"],
                                 sizing_mode="stretch_width")
        self.search.param.watch(lambda e: setattr(self.choice, "options",
                                                  self._matches(e.new)), "value_input")
        self.rate.on_click(self._rate)
        self.clear.on_click(lambda _: setattr(self, "ratings", {}))
        self.map_src = ColumnDataSource(dict(movie_map(), color=["#c9d1d9"] * len(
            movie_map()["id"]), size=[4] * len(movie_map()["id"])))
        fig = figure(title="movie map: PCA of the learned movie factors (similar taste = close)",
                     height=420, sizing_mode="stretch_width", tools="pan,wheel_zoom,reset")
        fig.scatter("x", "y", color="color", size="size", source=self.map_src, alpha=0.8)
        fig.add_tools(HoverTool(tooltips=[("", "@title")]))
        fig.axis.visible = False
        self.param.watch(self._update, "ratings")
        self._layout = pn.Column(
            self.error,
            pn.FlexBox(
                pn.Column(self.search, self.choice, self.stars, pn.Row(self.rate, self.clear),
                          pn.pane.Markdown("**Your ratings**", margin=(10, 5, 0, 5)),
                          self.rated, width=340),
                pn.Column(pn.pane.Markdown("### Recommended for you"), self.recs,
                          min_width=420, sizing_mode="stretch_width"),
            ),
            pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def _matches(self, text: str) -> dict[str, int]:
        t = text.strip().lower()
        hits = [i for i in self.order if t in self.movies[i]["title"].lower()] if t \
            else self.order
        return {label(self.movies[i]): i for i in hits[:60]}

    def _rate(self, _: object) -> None:
        mid = self.choice.value
        if mid is None:
            show_error(self.error, "Choose a film from the list first.")
            return
        show_error(self.error, "")
        self.ratings = {**self.ratings, int(mid): STARS.index(self.stars.value) + 1}

    def _update(self, _: object = None) -> None:
        r = self.ratings
        self.rated.object = "<ul class='rated-list'>" + "".join(
            f"<li>{html.escape(label(self.movies[m]))}: {'★' * s}</li>" for m, s in r.items()
        ) + "</ul>" if r else "<p class='muted'>none yet</p>"
        colors = ["#c9d1d9"] * len(self.map_src.data["id"])
        sizes = [4] * len(colors)
        if not r:
            self.recs.object = "<p class='muted'>Rate a few films to get recommendations.</p>"
            self.map_src.data.update(color=colors, size=sizes)
            return
        model = fm()
        try:
            recs = model.recommend(r, k=N_RECS)
            rows = [(m, s, because(model, r, m, self.movies)) for m, s in recs]
        except (KeyError, ValueError) as exc:
            show_error(self.error, str(exc))
            return
        self.recs.object = (
            "<table class='recs'><tr><th>film</th><th>predicted</th></tr>" + "".join(
                f"<tr class='rec'><td><b class='rec-title'>{html.escape(label(self.movies[m]))}"
                f"</b><div class='why'>{why}</div></td><td>{s:.1f} ★</td></tr>"
                for m, s, why in rows) + "</table>")
        index = {m: i for i, m in enumerate(self.map_src.data["id"])}
        for m, _ in recs:
            colors[index[m]], sizes[index[m]] = "#1f6feb", 10
        for m in r:
            colors[index[m]], sizes[index[m]] = "#f0883e", 12
        self.map_src.data.update(color=colors, size=sizes)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def page() -> pn.viewable.Viewable:
    return shell("movies", "Movies", MoviesPage,
                 "A factorization machine fitted to 80,000 MovieLens ratings places every "
                 "film and viewer in a 64-dimensional taste space. Your ratings place you in "
                 "it (no retraining); recommendations are the films nearest your taste.")


if __name__.startswith("bokeh"):
    page().servable(title="Demystify · Movies")
