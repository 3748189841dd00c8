// First thing in a static Demystify page (tools/site/assets/early.js): start the page's
// worker, so Python downloads and boots while the browser is still loading Bokeh and
// drawing the prerendered page. Its messages wait for Panel's handler (assigned to
// `onmessage` later by Panel's page script) and are kept for the loading panel.
(() => {
  // The page was prerendered twice when the site was built: as a full page and as
  // ?embed=true shows it (only the demo). Go to the one the query asks for.
  const pages = PAGES;
  const embed = /(^|[?&])embed=(true|1|yes)(&|$)/i.test(location.search);
  if (embed !== (pages.this === "embed")) {
    window.stop();  // this document goes no further
    window.demystifyWorker = {addEventListener() {}, postMessage() {}};  // for its scripts
    location.replace(new URL(embed ? pages.embed : pages.full, location.href).href +
                     location.search + location.hash);
    return;
  }
  const worker = new Worker(WORKER_URL + location.search);  // ?embed=true, ?theme=dark
  const waiting = [];
  let handler = null;
  window.demystifyMessages = [];
  // a page whose Bokeh runs later (defer.js): what Panel's handler needs Bokeh for waits
  const held = [];
  const needsBokeh = (event) => ["render", "patch"].includes(event.data && event.data.type);
  const deliver = (event) => {
    const deferred = window.demystifyDeferred;
    if (deferred && !deferred.loaded && (held.length || needsBokeh(event))) {
      held.push(event);
      deferred.load();
    } else handler.call(worker, event);
  };
  window.demystifyReleaseHeld = () => { while (held.length) handler.call(worker, held.shift()); };
  worker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "demystify") window.demystifyMessages.push(event);
    if (handler) deliver(event); else waiting.push(event);
  });
  Object.defineProperty(worker, "onmessage", {
    get: () => handler,
    set: (fn) => { handler = fn; while (waiting.length) deliver(waiting.shift()); },
  });
  window.demystifyWorker = worker;
  // ?theme=dark: the page was prerendered light. Outside the app itself (which the worker
  // renders dark) Panel's dark page differs in exactly these: the <html> theme attribute
  // and background, the template's two theme stylesheets, the header's navbar class.
  if (/(^|[?&])theme=dark(&|$)/.test(location.search)) {
    document.documentElement.dataset.bsTheme = "dark";
    const style = document.createElement("style");
    style.textContent = "html { background-color: #121212 }";
    document.head.appendChild(style);
    addEventListener("DOMContentLoaded", () => {
      for (const link of document.querySelectorAll("link[rel=stylesheet]")) {
        const dark = link.href.replace(/\/bundled\/theme\/(bootstrap_)?default\.css/,
                                       "/bundled/theme/$1dark.css");
        if (dark !== link.href) link.href = dark;
      }
      const header = document.getElementById("header");
      if (header) header.classList.replace("navbar-light", "navbar-dark");
    });
  }
})();
