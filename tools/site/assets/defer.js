// A page with a quick start (tools/site/assets/defer.js, after early.js): Bokeh's and
// Panel's JS (4.7 MB) no longer run while the page loads, and the prerendered page (hidden
// while the pad is up) is not laid out at all. They held the main thread for 1-5 s just
// when the loading screen's pad is drawn on (the pad itself only showed after them).
// The build turned those scripts into preloads (downloaded now, run later) and kept them
// in a list; load() runs them in their order, once the pad has given its first reading
// with the pen up or the full page takes over (loader.js), or when the worker's first
// message that needs Bokeh comes (early.js holds those until then).
(() => {
  const scripts = DEFERRED_SCRIPTS;  // [{src} or {text}], in the page order
  let started = null;
  const d = window.demystifyDeferred = {loaded: false, started: null, done: null};
  const run = (item) => new Promise((resolve, reject) => {
    const el = document.createElement("script");
    if (item.src === undefined) {
      el.textContent = item.text;  // runs as it is added
      document.head.appendChild(el);
      resolve();
      return;
    }
    el.src = item.src;
    el.async = false;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`could not load ${item.src}`));
    document.head.appendChild(el);
  });
  d.load = () => started || (started = (async () => {
    d.started = performance.now() / 1000;
    try {
      for (const item of scripts) {
        await run(item);
        await new Promise((r) => setTimeout(r, 0));  // a pointer event may come between
      }
    } finally {  // after a failure too: Panel's handler then says what is missing
      d.loaded = true;
      d.done = performance.now() / 1000;
      window.demystifyLoad?.marks.push([d.started, "mark", "page: Bokeh's scripts start"],
                                       [d.done, "mark", "page: Bokeh's scripts ran"]);
      window.demystifyReleaseHeld?.();
    }
  })());
})();
