// First thing in a static Demystify page (tools/site/assets/early.js): start the page's
// worker, so Python downloads and boots while the browser is still loading Bokeh and
// drawing the prerendered page. Its messages wait for Panel's handler (assigned to
// `onmessage` later by Panel's page script) and are kept for the loading panel.
(() => {
  const worker = new Worker(WORKER_URL + location.search);  // ?embed=true, ?theme=dark
  const waiting = [];
  let handler = null;
  window.demystifyMessages = [];
  worker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "demystify") window.demystifyMessages.push(event);
    if (handler) handler.call(worker, event); else waiting.push(event);
  });
  Object.defineProperty(worker, "onmessage", {
    get: () => handler,
    set: (fn) => { handler = fn; while (waiting.length) fn.call(worker, waiting.shift()); },
  });
  window.demystifyWorker = worker;
  // ?theme=dark: the page was prerendered light when the site was built; what Panel's
  // template renders differently for a dark theme outside the app itself (the worker
  // renders the app dark) is the page's background and the header's navbar class.
  if (/(^|[?&])theme=dark(&|$)/.test(location.search)) {
    const style = document.createElement("style");
    style.textContent = "html { background-color: #121212 }";
    document.head.appendChild(style);
    addEventListener("DOMContentLoaded", () => {
      const header = document.getElementById("header");
      if (header) header.classList.replace("navbar-light", "navbar-dark");
    });
  }
})();
