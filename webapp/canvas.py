"""A drawing canvas for mouse, touch and pen (Panel has none built in).

The browser keeps the strokes (so undo and clear are instant; `seed` starts it with
some) and sends the canvas as a PNG data URL to Python: throttled while drawing, and once
more when a stroke ends. An optional backdrop image (a data URL) is drawn under the
strokes (the Art page paints damage over a painting); `ink` and `paper` pick the colours.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class DrawCanvas(JSComponent):
    """Pointer-event drawing canvas; `image` is the latest PNG data URL ('' when empty)."""

    image = param.String(default="", doc="PNG data URL of the canvas ('' = nothing drawn)")
    strokes = param.Integer(default=0, doc="number of strokes on the canvas")
    size = param.Integer(default=280, doc="canvas side in CSS pixels")
    pixels = param.Integer(default=280, doc="canvas side in image pixels")
    pen = param.Number(default=18.0, doc="pen width in image pixels")
    ink = param.String(default="#000000")
    paper = param.String(default="#ffffff", doc="background colour ('' = transparent)")
    backdrop = param.String(default="", doc="data URL drawn under the strokes")
    throttle_ms = param.Integer(default=150, doc="minimum time between live updates")
    clear_count = param.Integer(default=0, doc="increment from Python to clear")
    seed = param.List(default=[], doc="strokes to start with, [[[x, y], ...], ...] in image "
                      "pixels (a drawing handed over from the static site's quick start)")

    _esm = """
export function render({ model, el }) {
  const wrap = document.createElement("div");
  wrap.className = "dc-wrap";
  const canvas = document.createElement("canvas");
  canvas.className = "dc-canvas";
  const bar = document.createElement("div");
  bar.className = "dc-bar";
  const undo = document.createElement("button");
  undo.textContent = "Undo";
  undo.className = "dc-undo";
  const clear = document.createElement("button");
  clear.textContent = "Clear";
  clear.className = "dc-clear";
  bar.append(undo, clear);
  wrap.append(canvas, bar);
  const ctx = canvas.getContext("2d");
  let strokes = (model.seed || []).map((s) => s.map((p) => [p[0], p[1]]));
  let current = null, lastSent = 0, timer = null, bg = null;
  wrap.dcStrokes = () => strokes;  // for a page outside Panel (the site's quick start)

  function setup() {
    canvas.width = canvas.height = model.pixels;
    canvas.style.width = canvas.style.height = model.size + "px";
    redraw();
  }
  function loadBackground() {
    if (!model.backdrop) { bg = null; redraw(); return; }
    const img = new Image();
    img.onload = () => { bg = img; redraw(); };
    img.src = model.backdrop;
  }
  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (model.paper) {
      ctx.fillStyle = model.paper;
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    if (bg) ctx.drawImage(bg, 0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = ctx.fillStyle = model.ink;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = model.pen;
    for (const s of strokes) drawStroke(s);
  }
  function drawStroke(s) {
    if (s.length === 1) {
      ctx.beginPath(); ctx.arc(s[0][0], s[0][1], model.pen / 2, 0, 2 * Math.PI); ctx.fill();
      return;
    }
    ctx.beginPath(); ctx.moveTo(s[0][0], s[0][1]);
    for (let i = 1; i < s.length; i++) ctx.lineTo(s[i][0], s[i][1]);
    ctx.stroke();
  }
  function send() {
    lastSent = Date.now();
    if (timer) { clearTimeout(timer); timer = null; }
    model.strokes = strokes.length;
    model.image = strokes.length ? canvas.toDataURL("image/png") : "";
  }
  function sendThrottled() {
    const wait = model.throttle_ms - (Date.now() - lastSent);
    if (wait <= 0) send();
    else if (!timer) timer = setTimeout(send, wait);
  }
  function point(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width,
            (e.clientY - r.top) * canvas.height / r.height];
  }
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    current = [point(e)];
    strokes.push(current);
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    e.preventDefault();
    current.push(point(e));
    redraw();
    sendThrottled();
  });
  const end = (e) => {
    if (!current) return;
    current = null;
    send();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  undo.addEventListener("click", () => { strokes.pop(); redraw(); send(); });
  clear.addEventListener("click", () => { strokes = []; redraw(); send(); });
  model.on("clear_count", () => { strokes = []; redraw(); send(); });
  model.on("backdrop", loadBackground);
  model.on(["size", "pixels", "pen", "ink", "paper"], setup);
  setup();
  loadBackground();
  return wrap;
}
"""

    _stylesheets = ["""
.dc-wrap {display: inline-flex; flex-direction: column; gap: 6px;}
.dc-canvas {touch-action: none; border: 1px solid #8c959f; border-radius: 6px;
            cursor: crosshair; background: #fff;}
.dc-bar {display: flex; gap: 6px;}
.dc-bar button {padding: 4px 14px; border-radius: 4px; border: 1px solid #8c959f;
                background: var(--panel-surface-color, #f6f8fa); color: inherit;
                cursor: pointer; font: inherit;}
"""]
