// How a page's Web Worker starts Demystify (tools/site/assets/worker.js). The site build
// puts this in place of the start-up part of Panel's worker script and keeps Panel's
// message protocol (sendPatch, self.onmessage) as it is. CONFIG is written by the build.
//
// Everything is asked for at once: the Pyodide runtime, the release's packages (Pyodide's
// `packages` option downloads them while the runtime compiles and boots; no micropip,
// no package index), the site's own packages (one .tar.gz of site-packages files, which
// this worker inflates natively while the runtime boots: tools/site/bundle.py says why)
// and the data files the page opens. The page (loader.js) shows the progress:
// {type: "demystify", stage, text, done, total} messages.
const T0 = performance.now();
const BASE = new URL(".", self.location.href);
const abs = (u) => new URL(u, BASE).href;
const seconds = () => (performance.now() - T0) / 1000;

const at = () => performance.timeOrigin + performance.now();  // the page's clock too

function report(stage, text, extra = {}) {
  // Panel's own loading line (a "mark" is a timing point for the profile, not shown; the
  // quick start's lines are the loading screen's pad's own)
  if (!["mark", "quick", "quick-done"].includes(stage)) {
    self.postMessage({type: "status", msg: text});
  }
  self.postMessage({type: "demystify", stage, text, t: seconds(), at: at(), ...extra});
}
self.demystifyReport = report;  // Python calls it through `js` (boot.py)

// Download progress: each finished download of this worker (resource timing entries),
// counted against the sizes the build recorded.
const expected = new Map(CONFIG.downloads.map(([u, n]) => [abs(u), n]));
const counted = new Set();
let doneBytes = 0, transferred = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    transferred += entry.transferSize || 0;  // 0 when it came from the cache
    self.postMessage({type: "demystify", stage: "transfer", transferred});
    downloaded(entry.name.split("#")[0]);
  }
}).observe({type: "resource", buffered: true});

function downloaded(name) {
  if (!expected.has(name) || counted.has(name)) return;
  counted.add(name);
  doneBytes += expected.get(name);
  self.postMessage({type: "demystify", stage: "download", at: at(), done: doneBytes,
                    total: CONFIG.totalBytes, file: name.split("/").pop()});
}

function fetchBytes(url) {
  return fetch(url).then((r) => {
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
}

// The site's packages as a tar: on a first visit fetched and inflated as it arrives (a
// host that already decoded the gzip, as some do for .gz files, hands over the tar
// itself), then kept inflated in Cache Storage, so a second visit only reads it back
// (inflating took 1.5 s of a traced warm visit). The name holds a digest of the contents: an entry under
// another name is an older build's, and goes.
const TAR_CACHE = "demystify-site-packages";

async function fetchTar(url) {
  const cache = await self.caches?.open(TAR_CACHE).catch(() => null);
  const hit = cache && await cache.match(url).catch(() => null);
  if (hit) {
    const bytes = new Uint8Array(await hit.arrayBuffer());
    downloaded(url);  // no resource timing entry for it
    return bytes;
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const first = await reader.read();  // inflated as it arrives, when it is gzip
  const gzip = !first.done && first.value[0] === 0x1f && first.value[1] === 0x8b;
  let body = new ReadableStream({
    start(c) { if (!first.done) c.enqueue(first.value); },
    async pull(c) {
      const {done, value} = await reader.read();
      if (done) c.close(); else c.enqueue(value);
    },
  });
  if (gzip) body = body.pipeThrough(new DecompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(body).arrayBuffer());
  if (cache) {  // once the page is drawn (copying it costs time); a full or refused cache
    // costs only the next visit's time
    keepTars.push(() => cache.put(url, new Response(bytes)).then(() => cache.keys()).then(
      (keys) => Promise.all(keys.filter((r) => !TAR_URLS.includes(r.url))
        .map((r) => cache.delete(r)))).catch(() => null));
  }
  return bytes;
}
const keepTars = [];
const TAR_URLS = [CONFIG.sitePackages, CONFIG.laterPackages].filter(Boolean).map(abs);

// Write the files of a tar (ustar, with pax headers for long names) under `root`. Written
// by hand: a worker has no tar reader, and Pyodide's own unpacker is the Python-side
// unpacking this replaces (the build writes only regular files: tools/site/bundle.py).
function untar(bytes, root, FS) {
  const text = (off, len) => {
    let end = off;
    while (end < off + len && bytes[end]) end++;
    return new TextDecoder().decode(bytes.subarray(off, end));
  };
  const made = new Set();
  let longName = null, files = 0;
  for (let off = 0; off + 512 <= bytes.length;) {
    if (!bytes[off]) break;  // the two empty blocks at the end
    const size = parseInt(text(off + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(bytes[off + 156] || 48);
    const prefix = text(off + 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${text(off, 100)}` : text(off, 100));
    const body = bytes.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {  // pax: "LEN path=VALUE\n" records for the next entry
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(body));
      longName = m ? m[1] : null;
      continue;
    }
    longName = null;
    if (type !== "0") continue;
    if (name.startsWith("/") || name.split("/").includes("..")) {
      throw new Error(`site packages: unsafe path ${name}`);
    }
    const path = `${root}/${name}`;
    const dir = path.slice(0, path.lastIndexOf("/"));
    if (!made.has(dir)) { FS.mkdirTree(dir); made.add(dir); }
    FS.writeFile(path, body);
    files++;
  }
  return files;
}

// The packages no page imports before its first render (tools/site/bundle.py: LATER):
// fetched with the rest, written after the page's after-render jobs (boot.py), or at once
// when Python imports one of them first (boot.py's finder). demystifyWriteLater returns
// false while the tar is still on its way; demystifyLaterReady() waits for it.
let laterTar = null, laterWritten = !CONFIG.laterPackages, laterSite = null;
const laterFetch = CONFIG.laterPackages ?
  fetchTar(abs(CONFIG.laterPackages)).then((bytes) => { laterTar = bytes; }) : null;
self.demystifyWriteLater = () => {
  if (laterWritten) return true;
  if (!laterTar || !laterSite) return false;
  laterWritten = true;
  const files = untar(laterTar, laterSite, self.pyodide.FS);
  laterTar = null;
  report("mark", `later packages written (${files} files)`);
  return true;
};
self.demystifyLaterNames = CONFIG.laterPackages ? CONFIG.later : [];
self.demystifyLaterReady = () => (laterFetch || Promise.resolve()).then(
  () => self.demystifyWriteLater());

// The page's quick start (webapp.quickstart, boot.py): the loading screen's pad posts its
// drawings here; Python reads the newest one whenever it waits (it registers `serve`
// once its model is loaded). Before the full page takes the last one over (Stop), Settle
// lets a stroke under way end and be read (at most `ms`).
let quickLatest = null, quickFresh = false, quickServe = null, quickTimer = null;
let quickPen = false, quickSettled = null;
self.addEventListener("message", (event) => {
  const msg = event.data;
  if (msg && msg.type === "demystify-quick-pen") {
    quickPen = msg.down;
    quickCheck();
  }
  if (!msg || msg.type !== "demystify-quick") return;
  quickLatest = {image: msg.image, strokes: msg.strokes, seq: msg.seq};
  quickFresh = true;
  quickSchedule();
});
function quickSchedule() {
  if (!quickServe || !quickFresh || quickTimer) return;
  quickTimer = setTimeout(() => {
    quickTimer = null;
    if (!quickServe || !quickFresh) return;
    quickFresh = false;
    quickServe(quickLatest.image, quickLatest.seq);
    quickSchedule();
    quickCheck();
  }, 0);
}
function quickCheck() {
  if (quickSettled && !quickPen && !(quickFresh && quickServe)) quickSettled();
}
self.demystifyQuickServe = (fn) => { quickServe = fn; quickSchedule(); };
self.demystifyQuickSettle = (ms) => new Promise((resolve) => {
  const timer = setTimeout(() => quickSettled && quickSettled(), ms);
  quickSettled = () => { quickSettled = null; clearTimeout(timer); resolve(); };
  quickSchedule();
  quickCheck();
});
self.demystifyQuickStop = () => {
  quickServe = null;
  return quickLatest;
};

const PACKAGES = CONFIG.packages.length + (CONFIG.bundled || []).length;
const normName = (n) => n.toLowerCase().replace(/[-_.]+/g, "-");

async function startApplication() {
  // Wake the GPU process's WebGPU now, while Python boots: the engine asks for its own
  // adapter and device later, and gets them sooner.
  self.navigator.gpu?.requestAdapter?.().catch(() => null);
  try {
    report("runtime", `Downloading Python (Pyodide ${CONFIG.pyodideVersion}) and ` +
           `${PACKAGES} packages`, {total: CONFIG.totalBytes, done: 0});
    const data = CONFIG.data.prefetch.map(([rel, url]) =>
      fetchBytes(abs(url)).then((buf) => [rel, buf]));
    const own = CONFIG.sitePackages && fetchTar(abs(CONFIG.sitePackages));
    importScripts(abs(CONFIG.indexURL) + "pyodide.js");
    const pyodide = await loadPyodide({
      indexURL: abs(CONFIG.indexURL),
      ...(CONFIG.stdLibURL ? {stdLibURL: abs(CONFIG.stdLibURL)} : {}),
      packages: CONFIG.packages.map((p) => (p.includes("/") ? abs(p) : p)),
    });
    self.pyodide = pyodide;
    report("mark", `runtime and ${CONFIG.packages.length} release packages loaded`);
    const loaded = new Set(Object.keys(pyodide.loadedPackages).map(normName));
    const absent = CONFIG.expect.filter((n) => !loaded.has(normName(n)));
    if (absent.length) throw new Error(`packages did not install: ${absent.join(", ")}`);
    report("python", "Python is running; placing the demo files");
    const site = pyodide.runPython(
      "import os, sysconfig; os.path.normpath(sysconfig.get_path('purelib'))");
    laterSite = site;
    if (own) {  // the site's packages (offline: all of them) and the bytecode
      const files = untar(await own, site, pyodide.FS);
      pyodide.runPython("import importlib; importlib.invalidate_caches()");
      report("mark", `${PACKAGES - CONFIG.packages.length} packages written (${files} files)`);
    }
    for (const [rel, buf] of await Promise.all(data)) {
      const path = `${site}/${rel}`;
      pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
      pyodide.FS.writeFile(path, new Uint8Array(buf));
    }
    for (const [rel, url] of CONFIG.data.lazy) {  // fetched on first read (synchronous XHR)
      const path = `${site}/${rel}`;
      const dir = path.slice(0, path.lastIndexOf("/"));
      pyodide.FS.mkdirTree(dir);
      pyodide.FS.createLazyFile(dir, path.slice(dir.length + 1), abs(url), true, false);
    }
    pyodide.globals.set("sendPatch", sendPatch);
    report("app", "Starting the app");
    const [docs_json, render_items, root_ids] = await pyodide.runPythonAsync(CONFIG.code);
    report("render", "Drawing the page");
    self.postMessage({type: "render", docs_json, render_items, root_ids});
    for (const keep of keepTars) setTimeout(keep, 0);
  } catch (e) {
    const lines = String(e).trim().split("\n");
    report("error", lines[lines.length - 1], {detail: String(e)});
    throw e;
  }
}
