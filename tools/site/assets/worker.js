// How a page's Web Worker starts Demystify (tools/site/assets/worker.js). The site build
// puts this in place of the start-up part of Panel's worker script and keeps Panel's
// message protocol (sendPatch, self.onmessage) as it is. CONFIG is written by the build.
//
// Everything is asked for at once: the Pyodide runtime, every package (Pyodide's
// `packages` option downloads them while the runtime compiles and boots; no micropip,
// no package index) and the data files the page opens. The page (loader.js) shows the
// progress: {type: "demystify", stage, text, done, total} messages.
const T0 = performance.now();
const BASE = new URL(".", self.location.href);
const abs = (u) => new URL(u, BASE).href;
const seconds = () => (performance.now() - T0) / 1000;

const at = () => performance.timeOrigin + performance.now();  // the page's clock too

function report(stage, text, extra = {}) {
  // Panel's own loading line (a "mark" is a timing point for the profile, not shown)
  if (stage !== "mark") self.postMessage({type: "status", msg: text});
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
    const name = entry.name.split("#")[0];
    if (!expected.has(name) || counted.has(name)) continue;
    counted.add(name);
    doneBytes += expected.get(name);
    self.postMessage({type: "demystify", stage: "download", at: at(), done: doneBytes,
                      total: CONFIG.totalBytes, file: name.split("/").pop()});
  }
}).observe({type: "resource", buffered: true});

function fetchBytes(url) {
  return fetch(url).then((r) => {
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
}

const normName = (n) => n.toLowerCase().replace(/[-_.]+/g, "-");

async function startApplication() {
  // Wake the GPU process's WebGPU now, while Python boots: the engine asks for its own
  // adapter and device later, and gets them sooner.
  self.navigator.gpu?.requestAdapter?.().catch(() => null);
  try {
    report("runtime", `Downloading Python (Pyodide ${CONFIG.pyodideVersion}) and ` +
           `${CONFIG.packages.length} packages`, {total: CONFIG.totalBytes, done: 0});
    const data = CONFIG.data.prefetch.map(([rel, url]) =>
      fetchBytes(abs(url)).then((buf) => [rel, buf]));
    const pyc = CONFIG.bytecode && fetchBytes(abs(CONFIG.bytecode));
    importScripts(abs(CONFIG.indexURL) + "pyodide.js");
    const pyodide = await loadPyodide({
      indexURL: abs(CONFIG.indexURL),
      ...(CONFIG.stdLibURL ? {stdLibURL: abs(CONFIG.stdLibURL)} : {}),
      packages: CONFIG.packages.map((p) => (p.includes("/") ? abs(p) : p)),
    });
    self.pyodide = pyodide;
    report("mark", `runtime and ${CONFIG.packages.length} packages loaded`);
    const loaded = new Set(Object.keys(pyodide.loadedPackages).map(normName));
    const absent = CONFIG.expect.filter((n) => !loaded.has(normName(n)));
    if (absent.length) throw new Error(`packages did not install: ${absent.join(", ")}`);
    report("python", "Python is running; placing the demo files");
    const site = pyodide.runPython(
      "import os, sysconfig; os.path.normpath(sysconfig.get_path('purelib'))");
    if (pyc) pyodide.unpackArchive(await pyc, "zip", {extractDir: site});  // their bytecode
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
  } catch (e) {
    const lines = String(e).trim().split("\n");
    report("error", lines[lines.length - 1], {detail: String(e)});
    throw e;
  }
}
