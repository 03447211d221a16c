"""The HTML pages: the file list at ``/`` and the OpenSeadragon viewer at ``/view/{name}``.

OpenSeadragon is the real one from npm, installed next to this file
(``ligcodec/serve/static/package.json``) and served from its ``node_modules`` at run time; it is
not part of the Python package. Without it the pages say how to install it.
``$LIGCODEC_OPENSEADRAGON`` names another folder holding ``openseadragon.min.js`` and its
``images/`` (e.g. for an installed, non-editable ligcodec).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

STATIC = Path(__file__).resolve().parent / "static"
OSD_DIR = Path(os.environ.get("LIGCODEC_OPENSEADRAGON")
               or STATIC / "node_modules" / "openseadragon" / "build" / "openseadragon")
INSTALL = f"npm ci --prefix {STATIC}"


def osd_installed() -> bool:
    return (OSD_DIR / "openseadragon.min.js").is_file()


def _missing() -> str:
    return (f"<p class=warn>OpenSeadragon is not installed, so this page cannot show the image. Install it "
            f"(Node.js/npm needed) with:<br><code>{html.escape(INSTALL)}</code><br>then reload. The image services "
            "below work without it.</p>")


_STYLE = """
html,body{margin:0;height:100%;background:#15171a;color:#d8dde3;font:14px/1.45 system-ui,sans-serif}
a{color:#8cc4ff} code{background:#262a30;padding:1px 4px;border-radius:3px}
header{height:32px;display:flex;gap:14px;align-items:center;padding:0 12px;background:#1f2227}
main{padding:12px 16px} table{border-collapse:collapse} td,th{padding:3px 12px 3px 0;text-align:left}
.warn{background:#3a2a12;border:1px solid #7a5a20;padding:8px 12px;border-radius:4px}
#viewer{position:absolute;top:32px;left:0;right:0;bottom:0;background:#000}
"""


def index(entries) -> str:
    """``entries``: ``[(name, width, height, channels, bit_depth, file bytes) | (name, error)]``."""
    rows = []
    for e in entries:
        q = quote(e[0], safe="")
        if len(e) == 2:
            rows.append(f"<tr><td>{html.escape(e[0])}</td><td colspan=4>cannot read: {html.escape(e[1])}</td></tr>")
            continue
        name, w, h, c, bits, size = e
        rows.append(f"<tr><td><a href='/view/{q}'>{html.escape(name)}</a></td><td>{w} x {h}</td><td>{c} ch, "
                    f"{bits}-bit</td><td>{size / 1e6:.2f} MB ({size * 8 / (w * h):.2f} bpp)</td>"
                    f"<td><a href='/view/{q}?iiif=1'>IIIF viewer</a> &middot; <a href='/iiif/3/{q}/info.json'>"
                    f"info.json</a> &middot; <a href='/dzi/{q}.dzi'>.dzi</a></td></tr>")
    body = "".join(rows) or "<tr><td>no .lig files found</td></tr>"
    warn = "" if osd_installed() else _missing()
    return (f"<!doctype html><html><head><meta charset=utf-8><title>ligcodec serve</title><style>{_STYLE}</style>"
            f"</head><body><header><b>ligcodec serve</b></header><main>{warn}<table><tr><th>file</th><th>size</th>"
            f"<th>pixels</th><th>bytes</th><th>services</th></tr>{body}</table></main></body></html>")


def viewer(name: str, width: int, height: int) -> str:
    """The viewer. Query parameters: ``iiif=1`` reads the IIIF info.json (default: Deep Zoom),
    ``format=png|jpg|webp`` the tiles' format (png: lossless), ``crisp=1`` shows pixels exactly
    (canvas drawer, no smoothing, no animation, best level only, no overlays: what the browser
    test compares with ``ligcodec.decode``). ``window.viewer`` is the OpenSeadragon viewer."""
    q = quote(name, safe="")
    cfg = {"name": name, "dzi": f"/dzi/{q}.dzi", "info": f"/iiif/3/{q}/info.json", "width": width, "height": height}
    title = html.escape(name)
    head = (f"<!doctype html><html><head><meta charset=utf-8><title>{title} - ligcodec</title>"
            f"<style>{_STYLE}</style></head><body><header><a href='/'>files</a><b>{title}</b><span>{width} x {height}"
            f"</span><a href='?'>Deep Zoom</a><a href='?iiif=1'>IIIF</a><a href='?crisp=1'>pixels</a>"
            "<span id=status></span></header>")
    if not osd_installed():
        return head + f"<main>{_missing()}</main></body></html>"
    return head + """<div id=viewer></div>
<script src="/static/openseadragon/openseadragon.min.js"></script>
<script>
const cfg = """ + json.dumps(cfg) + """;
const p = new URLSearchParams(location.search);
const crisp = p.get('crisp') === '1', iiif = p.get('iiif') === '1';
const fmt = ['png', 'jpg', 'webp'].includes(p.get('format')) ? p.get('format') : 'png';
async function tileSource() {
  if (!iiif) return cfg.dzi + '?format=' + fmt;  // the descriptor's Format names the tiles' format
  const r = await fetch(cfg.info);
  if (!r.ok) throw new Error('info.json: ' + r.status + ' ' + await r.text());
  const info = await r.json();
  info.tileFormat = fmt;
  return info;
}
const opts = {id: 'viewer', prefixUrl: '/static/openseadragon/images/', showNavigator: !crisp,
              showNavigationControl: !crisp, maxZoomPixelRatio: 8, crossOriginPolicy: false};
// Pixels mode: each screen pixel shows one decoded pixel at zooms 1, 1/2, 1/4... of the image:
// the level drawn is the one with at least one tile pixel per screen pixel (minPixelRatio ~1), no
// smoothing, no animation or blending, and tiles drawn at their own size (the canvas drawer pads
// each tile by 1 px against seams, which stretches it; seams cannot appear at whole-pixel zooms).
if (crisp) Object.assign(opts, {drawer: 'canvas', imageSmoothingEnabled: false, animationTime: 0,
                                blendTime: 0, immediateRender: true, springStiffness: 100, minPixelRatio: 0.99,
                                minZoomImageRatio: 0.5});
window.ligReady = tileSource().then(src => {
  opts.tileSources = src;
  window.viewer = OpenSeadragon(opts);
  if (crisp && window.viewer.drawer && window.viewer.drawer.minimumOverlapRequired) {
    window.viewer.drawer.minimumOverlapRequired = () => false;
  }
  window.viewer.addHandler('open-failed', e => {
    document.getElementById('status').textContent = 'cannot open: ' + e.message;
  });
  return window.viewer;
}).catch(e => { document.getElementById('status').textContent = String(e); throw e; });
</script></body></html>"""
