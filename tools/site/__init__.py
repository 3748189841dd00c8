"""The static browser build of the web app (`python build.py site`) and the slide deck
(`python build.py slides`); build.py runs `python -m tools.site` inside .venv (it needs
Panel). Modules: build_site (the order of things), pages (Panel's conversion), wheels
(the project wheel, repacked dependencies), pyodide_dist (Pyodide releases), worker (a
page's worker and loading panel; assets/), vendor (offline copies of Panel/Bokeh files),
pwa, slides, cli."""
