"""A file upload that enforces its size limit in the browser, before anything is sent.

Panel's FileInput sends any file it is given; a file over the server's websocket message
limit would then drop the whole session. This input checks `file.size` first: too large,
and only `error` (a sentence) travels; otherwise the bytes arrive base64-encoded in
`value`. The server checks the size again (`webapp.common.check_upload`).
"""

from __future__ import annotations

import base64

import param
from panel.custom import JSComponent


class UploadInput(JSComponent):
    """<input type=file> with a client-side size limit; `data()` gives the bytes."""

    accept = param.String(default="")
    max_bytes = param.Integer(default=8 * 2**20)
    value = param.String(default="", doc="the file's bytes, base64")
    filename = param.String(default="")
    error = param.String(default="", doc="why the chosen file was refused ('' = none)")
    uploads = param.Integer(default=0, doc="counts uploads (the same file twice counts)")

    _esm = """
export function render({ model }) {
  const input = document.createElement("input");
  input.type = "file";
  input.className = "upload-input";
  input.accept = model.accept;
  model.on("accept", () => { input.accept = model.accept; });
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (!file) return;
    if (file.size > model.max_bytes) {
      const mb = (n) => (n / 1048576).toFixed(1) + " MB";
      model.error = `${file.name} (${mb(file.size)}) is over the limit of ${mb(model.max_bytes)}`;
      input.value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const url = reader.result;
      model.error = "";
      model.filename = file.name;
      model.value = url.substring(url.indexOf(",") + 1);
      model.uploads = model.uploads + 1;
      input.value = "";
    };
    reader.onerror = () => { model.error = `${file.name} could not be read`; };
    reader.readAsDataURL(file);
  });
  return input;
}
"""

    _stylesheets = ["""
.upload-input {padding: 6px; border: 1px dashed #8c959f; border-radius: 6px; max-width: 100%;
               font: inherit; color: inherit;}
"""]

    def data(self) -> bytes:
        return base64.b64decode(self.value) if self.value else b""
