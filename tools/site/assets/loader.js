// The loading panel of a static Demystify page (tools/site/assets/loader.js, put into
// every page by the site build): what the page's worker is doing (download with bytes,
// Python, WebGPU, Panel and the engine, the page), then gone once the app is live. Keeps
// the timings in window.demystifyLoad (seconds since the page opened) for the benchmark,
// and shows a lasting notice when the browser gives no WebGPU (the engine then computes
// with NumPy).
(() => {
  const STEPS = [
    ["download", "Download Python, its packages and the demo's files"],
    ["python", "Start Python"],
    ["gpu", "Start the engine's GPU (WebGPU)"],
    ["imports", "Load Panel, Bokeh and the engine"],
    ["page", "Build the page"],
    ["render", "Draw it"],
  ];
  const load = window.demystifyLoad = {stages: {}, ready: null, error: null, webgpu: null,
                                       marks: []};  // [seconds, stage, text]: every step
  const now = () => performance.now() / 1000;
  // when the worker did it (its messages can wait while this page is busy)
  const when = (msg) => (msg.at ? (msg.at - performance.timeOrigin) / 1000 : now());
  const dark = /(^|[?&])theme=dark(&|$)/.test(location.search);
  const panel = document.createElement("div");
  panel.id = "demystify-loading";
  panel.className = dark ? "dm-dark" : "";
  panel.setAttribute("role", "status");
  panel.innerHTML = `<div class="dm-title">Starting Demystify in your browser</div>
    <progress class="dm-bar" max="1" value="0"></progress>
    <div class="dm-bytes"></div><ol class="dm-steps">${STEPS.map(([k, label]) =>
      `<li data-step="${k}"><span class="dm-label">${label}</span>` +
      `<span class="dm-time"></span></li>`).join("")}</ol>
    <div class="dm-now"></div><div class="dm-error" hidden></div>`;
  const $ = (sel) => panel.querySelector(sel);
  const quick = window.demystifyQuick && quickPad(window.demystifyQuick);
  if (quick) panel.appendChild(quick.box);

  // The page's quick start (tools/site/worker.py: quick_start): the page's own canvas code
  // with a stand-in for Panel's model, whose drawings go to the worker; the worker's
  // readings come back as "quick" messages; "quick-done": the full page took it over.
  function quickPad(q) {
    const box = document.createElement("div");
    box.id = "demystify-quick";
    box.innerHTML = `<div class="dm-quick-title"></div><div class="dm-quick-pad"></div>
      <div class="dm-quick-result"><span class="dm-quick-prediction">–</span>
      <span class="dm-quick-detail">draw to start</span></div>`;
    box.querySelector(".dm-quick-title").textContent = q.title;
    let seq = 0, shown = 0, el = null, image = "";
    const model = {...q.canvas, ink: "#000000", paper: "#ffffff", backdrop: "", seed: [],
      clear_count: 0, strokes: 0, on() {},
      get image() { return image; },
      set image(value) {
        image = value;
        load.quickSent = ++seq;
        window.demystifyWorker.postMessage({type: "demystify-quick", image: value, seq,
                                            strokes: el ? el.dcStrokes() : []});
      }};
    el = q.render({model, el: box});
    box.querySelector(".dm-quick-pad").appendChild(el);
    // the worker waits for a stroke under way before the full page takes the drawing;
    // Bokeh runs (defer.js) once a reading is shown with the pen up: not during a stroke
    let penDown = false;
    const bokeh = () => { if (!penDown && shown) window.demystifyDeferred?.load(); };
    const pen = (down) => () => {
      penDown = down;
      window.demystifyWorker.postMessage({type: "demystify-quick-pen", down});
      bokeh();
    };
    const canvas = el.querySelector("canvas");
    canvas.addEventListener("pointerdown", pen(true));
    for (const e of ["pointerup", "pointercancel"]) canvas.addEventListener(e, pen(false));
    const show = (msg) => {
      if (msg.seq < shown) return;  // an older drawing's, read late
      shown = msg.seq;
      box.querySelector(".dm-quick-prediction").textContent = msg.label;
      box.querySelector(".dm-quick-detail").textContent = msg.text;
      load.quick = {label: msg.label, seq: msg.seq, at: when(msg), shown: now(),
                    panel: msg.panel};
      bokeh();
    };
    const done = () => {
      window.demystifyDeferred?.load();
      box.classList.add("dm-quick-done");
      box.querySelector(".dm-quick-title").textContent = "Opening your drawing in the app";
    };
    return {box, show, done};
  }
  const mb = (n) => (n / 2 ** 20).toFixed(1);
  let current = null;

  function enter(step, t = now()) {
    if (step === current || !STEPS.some(([k]) => k === step)) return;
    const order = STEPS.map(([k]) => k);
    for (const li of panel.querySelectorAll("li")) {
      const i = order.indexOf(li.dataset.step), j = order.indexOf(step);
      li.className = i < j ? "dm-done" : i === j ? "dm-active" : "";
    }
    if (current && load.stages[current] !== undefined) {
      const li = panel.querySelector(`li[data-step="${current}"] .dm-time`);
      if (li) li.textContent = `${(t - load.stages[current]).toFixed(1)} s`;
    }
    current = step;
    load.stages[step] = t;
  }

  function notice(reason) {
    if (document.querySelector(".demystify-notice")) return;
    const div = document.createElement("div");
    div.className = "demystify-notice" + (dark ? " dm-dark" : "");
    div.setAttribute("role", "status");
    div.innerHTML = "<b>No WebGPU in this browser</b>: the engine computes with NumPy on " +
      "the CPU (same results, slower). <span class='dm-reason'></span>" +
      "<button type='button' aria-label='close'>×</button>";
    div.querySelector(".dm-reason").textContent = reason ? `(${reason})` : "";
    div.querySelector("button").onclick = () => div.remove();
    document.body.appendChild(div);
  }

  function onMessage(event) {
    const msg = event.data || {};
    if (msg.type === "render") enter("render");
    if (msg.type !== "demystify") return;
    if (msg.stage === "transfer") { load.transferred = msg.transferred; return; }
    if (msg.stage === "quick" || msg.stage === "quick-done") {
      load.marks.push([when(msg), "mark", msg.stage === "quick" ?
        `quick pad read ${msg.label} (drawing ${msg.seq})` : "quick pad handed over"]);
      if (quick) (msg.stage === "quick" ? quick.show : quick.done)(msg);
      return;
    }
    if (msg.stage !== "download") load.marks.push([when(msg), msg.stage, msg.text || ""]);
    if (msg.stage === "runtime") enter("download", when(msg));
    else if (msg.stage === "download") {
      $(".dm-bar").value = msg.total ? msg.done / msg.total : 0;
      $(".dm-bytes").textContent = `${mb(msg.done)} of ${mb(msg.total)} MB` +
        (msg.file ? ` · ${msg.file}` : "");
      load.bytes = msg.done;
    } else if (msg.stage === "error") {
      load.error = msg.text;
      const box = $(".dm-error");
      box.hidden = false;
      box.textContent = `The app could not start: ${msg.text}`;
      panel.classList.add("dm-failed");
    } else if (msg.stage !== "app" && msg.stage !== "mark") {  // app, mark: no step of theirs
      enter(msg.stage, when(msg));
    }
    if (msg.stage === "gpu" && msg.webgpu !== undefined) {
      load.webgpu = msg.webgpu;
      load.adapter = msg.adapter;
      load.reason = msg.reason;
      if (!msg.webgpu) notice(msg.reason);
    }
    if (msg.text && !["download", "mark"].includes(msg.stage)) $(".dm-now").textContent = msg.text;
  }

  function ready() {
    if (load.ready !== null) return;
    enter("ready");
    load.ready = now();
    document.documentElement.dataset.demystify = "ready";
    panel.remove();
  }

  function start() {
    document.body.appendChild(panel);
    for (const event of window.demystifyMessages || []) onMessage(event);  // before this
    window.demystifyWorker.addEventListener("message", onMessage);
    // Panel's page script drops the body's pn-loading class once the live app is drawn
    new MutationObserver(() => {
      if (load.stages.render !== undefined && !document.body.classList.contains("pn-loading"))
        ready();
    }).observe(document.body, {attributes: true, attributeFilter: ["class"]});
  }
  if (document.body) start(); else addEventListener("DOMContentLoaded", start);
})();
