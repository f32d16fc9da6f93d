"""The page itself: one HTML document with its style and script inline (the display has no
internet and the page loads nothing from anywhere), its words in the station's language.

The script asks `state` every refresh_s seconds and sets every value as text (textContent),
never as markup. The Content-Security-Policy allows exactly this style and this script (by
their SHA-256, CSP Level 3 "hash-source") and connections to this server only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass

from agent.screen.view import Words

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","DejaVu Sans",sans-serif;
background:#10151c;color:#e8edf2;width:100vw;min-height:100vh}
header{display:flex;justify-content:space-between;align-items:center;height:56px;
padding:0 20px;background:#1b2430;font-size:22px}
header .clock{font-size:26px;font-variant-numeric:tabular-nums}
#alarms{min-height:8px}
#alarms div{background:#b3261e;color:#fff;font-size:20px;padding:8px 20px;
border-bottom:1px solid #7a1a14}
#alarms .stale{background:#8a6d00}
main{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;padding:12px}
.tile{background:#1e2835;border-radius:8px;padding:10px 12px;min-height:200px;
border-left:8px solid #4a5868;overflow:hidden}
.tile.copying{border-left-color:#2f7de1}.tile.sealing{border-left-color:#7b5fd6}
.tile.uploading{border-left-color:#16a3b8}.tile.confirmed{border-left-color:#2e9d4f}
.tile.stopped{border-left-color:#d0342c}.tile.empty{opacity:.45}
.bay{font-size:30px;font-weight:bold;float:right}
.serial{font-size:20px;font-weight:bold}.officer,.docked{font-size:15px;color:#b8c4d0}
.activity{font-size:22px;margin-top:6px}.detail,.wipe{font-size:15px;color:#cfd8e2}
.bar{height:10px;background:#0d1218;border-radius:5px;margin:6px 0}
.fill{height:10px;background:#2f7de1;border-radius:5px}
.verdict{margin-top:8px;font-size:18px;font-weight:bold;padding:3px 8px;border-radius:4px;
display:inline-block;background:#4a5868}
.verdict.ready{background:#2e9d4f}.verdict.warning{background:#b07d00}
.verdict.not-ready{background:#d0342c}
.reasons{font-size:14px;color:#ffd7d4;margin:4px 0 0 0;padding-left:18px}
"""

_SCRIPT = """
"use strict";
const L = JSON.parse(document.getElementById("labels").textContent);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function tile(t) {
  const d = el("section", "tile " + t.state);
  d.dataset.bay = t.bay; d.dataset.serial = t.serial; d.dataset.state = t.state;
  d.appendChild(el("div", "bay", t.bay));
  if (t.state === "empty") { d.appendChild(el("div", "activity", t.activity)); return d; }
  d.appendChild(el("div", "serial", L.camera + " " + t.serial));
  d.appendChild(el("div", "officer", L.officer + " " + t.officer));
  d.appendChild(el("div", "docked", L.docked + " " + t.docked));
  d.appendChild(el("div", "activity", t.activity));
  if (t.percent !== null) {
    const bar = el("div", "bar"), fill = el("div", "fill");
    fill.style.width = Math.max(0, Math.min(100, t.percent)) + "%";
    bar.appendChild(fill); d.appendChild(bar);
  }
  d.appendChild(el("div", "detail", t.detail));
  if (t.wipe) d.appendChild(el("div", "wipe", t.wipe));
  d.appendChild(el("div", "verdict " + t.verdict_class, t.verdict));
  if (t.reasons.length) {
    const ul = el("ul", "reasons");
    for (const r of t.reasons) ul.appendChild(el("li", "", r));
    d.appendChild(ul);
  }
  return d;
}
function show(s) {
  document.getElementById("clock").textContent = s.date + " " + s.clock + " " + s.zone;
  const a = document.getElementById("alarms");
  a.replaceChildren(...s.alarms.map(x => el("div", "alarm", x)));
  document.getElementById("bays").replaceChildren(...s.tiles.map(tile));
  document.body.dataset.updated = String(Date.now());
}
function stale() {
  const a = document.getElementById("alarms");
  if (!a.querySelector(".stale")) a.prepend(el("div", "stale", L.stale));
}
async function poll() {
  try {
    const r = await fetch("state", {cache: "no-store"});
    if (!r.ok) throw new Error(String(r.status));
    show(await r.json());
  } catch (e) { stale(); }
  setTimeout(poll, L.refresh_ms);
}
poll();
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CSP = (
    "default-src 'none'; "
    f"style-src {_hash(_STYLE)}; script-src {_hash(_SCRIPT)}; connect-src 'self'; "
    "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Page:
    language: str
    refresh_s: int

    def render(self, _: Words) -> bytes:
        labels = {
            "camera": _("Camera"),
            "officer": _("Officer"),
            "docked": _("Docked at"),
            "stale": _("No news from the station: this page is not up to date"),
            "refresh_ms": self.refresh_s * 1000,
        }
        # JSON inside <script type="application/json">: "<" escaped so no text ends the element.
        data = json.dumps(labels, ensure_ascii=False).replace("<", "\\u003c")
        lang = "zh-CN" if self.language == "zh_CN" else "en"
        title = html.escape(_("Bay status"))
        return (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=1280"><title>{title}</title>'
            f"<style>{_STYLE}</style></head><body>"
            f'<header><span class="title">{title}</span><span class="clock" id="clock"></span>'
            f'</header><div id="alarms"></div><main id="bays"></main>'
            f'<script type="application/json" id="labels">{data}</script>'
            f"<script>{_SCRIPT}</script></body></html>"
        ).encode()
