// Compile Python sources to bytecode with a Pyodide release's own interpreter (the one
// the pages run), under Node. tools/site/bytecode.py writes the sources into HOST_DIR,
// one folder per job, and JOBS (JSON: [{dir, ddir, legacy}]) says, per folder, the path
// the sources have in the browser (ddir: what tracebacks name) and whether each .pyc goes
// next to its source (legacy: the layout zipimport reads) or into __pycache__/.
//   node compile_pyc.mjs PYODIDE_DIR HOST_DIR JOBS_JSON
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [indexDir, hostDir, jobsFile] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(indexDir + "/pyodide.mjs").href);
const py = await loadPyodide({ indexURL: indexDir + "/" });
py.mountNodeFS("/host", hostDir);
py.globals.set("JOBS", readFileSync(jobsFile, "utf8"));
const out = py.runPython(`
import compileall, json, os, py_compile, sys, sysconfig
site = os.path.normpath(sysconfig.get_path("purelib"))
ok = True
for job in json.loads(JOBS):
    ok &= bool(compileall.compile_dir(
        "/host/" + job["dir"], ddir=job["ddir"] or site, quiet=1, workers=1,
        legacy=job["legacy"],
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH))
f"{'ok' if ok else 'failed'} {sys.implementation.cache_tag}"
`);
console.log(out);
process.exit(out.startsWith("ok") ? 0 : 1);
