"""The dashboard's one stylesheet and one script, served as files (the CSP allows no inline).

The script refreshes the page in place: it fetches the same URL, swaps the new
<main> in, and so keeps the scroll position and whatever the search box holds.
"""

from __future__ import annotations

CSS = """
:root { --fg: #1d232a; --muted: #5f6b76; --line: #dde3e8; --bg: #f6f8fa; --link: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
header { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; padding: 10px 20px;
         background: #1d232a; color: #fff; position: sticky; top: 0; z-index: 1; }
header .brand { color: #fff; font-weight: 700; }
header .where { color: #b8c2cc; font-family: ui-monospace, monospace; font-size: 12px;
                overflow-wrap: anywhere; }
header .search { margin-left: auto; display: flex; gap: 4px; }
header input[type=search] { width: 240px; padding: 4px 8px; border-radius: 4px;
                            border: 1px solid #556; }
header .auto { color: #b8c2cc; font-size: 12px; }
button { padding: 4px 12px; border-radius: 4px; border: 1px solid #8895a0; background: #fff;
         cursor: pointer; font: inherit; }
main { padding: 8px 20px 24px; max-width: 1400px; }
h1 { font-size: 20px; margin: 12px 0; overflow-wrap: anywhere; }
h2 { font-size: 15px; margin: 20px 0 8px; }
section { margin-bottom: 8px; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; }
.count { background: #fff; border: 1px solid var(--line); border-radius: 6px;
         padding: 8px 14px; min-width: 110px; display: flex; flex-direction: column; }
.count .n { font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; }
.count span:last-child { color: var(--muted); font-size: 12px; }
.chart { width: 100%; max-width: 900px; height: auto; background: #fff;
         border: 1px solid var(--line); border-radius: 6px; font-size: 11px; }
.chart text { fill: var(--muted); }
table { border-collapse: collapse; width: 100%; background: #fff;
        border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef2f5; font-weight: 600; font-size: 12px; color: var(--muted);
     white-space: nowrap; }
td { font-variant-numeric: tabular-nums; }
td:first-child a { overflow-wrap: anywhere; }
td.error { color: #8e1b1b; font-family: ui-monospace, monospace; font-size: 12px;
           overflow-wrap: anywhere; max-width: 420px; }
td.empty { color: var(--muted); text-align: center; }
tr.q-blocked { background: #fff3f2; }
tr.is-head { background: #fffbe6; }
.head { background: #b78a00; color: #fff; border-radius: 3px; padding: 0 5px;
        font-size: 11px; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
         background: #e6eaee; color: #333; white-space: nowrap; }
.s-blocked, .s-failed, .s-retrying { background: #fdd9d6; color: #8e1b1b; }
.s-running { background: #d7e8fb; color: #0b4a8a; }
.s-done { background: #dcefdc; color: #1e5b20; }
.s-available { background: #e8f4e8; color: #2a6a2c; }
.s-scheduled { background: #efe6fb; color: #553388; }
.s-cancelled, .s-idle { background: #ececec; color: #555; }
.s-readonly { background: #ffe8a3; color: #5c4500; }
.count.s-blocked, .count.s-failed, .count.s-retrying, .count.s-running, .count.s-done,
.count.s-available, .count.s-scheduled, .count.s-cancelled { background: #fff; }
.count.s-failed .n, .count.s-retrying .n { color: #b3261e; }
.filters, .pager { margin: 8px 0; display: flex; gap: 10px; align-items: center; }
.filters a.current { font-weight: 700; color: var(--fg); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff;
     border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
pre.error { color: #8e1b1b; background: #fff8f7; }
ol.errors { padding-left: 20px; }
.actions { display: flex; gap: 8px; margin: 0 0 12px; }
.actions form { margin: 0; }
button.retry { background: #0b5cad; color: #fff; border-color: #0b5cad; }
button.cancel { color: #8e1b1b; border-color: #c9a3a0; }
.notice { background: #e3f1e3; border: 1px solid #b5d6b5; border-radius: 6px;
          padding: 6px 12px; }
.problem { background: #fff3f2; border: 1px solid #f0c2bd; border-radius: 6px;
           padding: 10px 14px; overflow-wrap: anywhere; }
.none, .read-at, .more { color: var(--muted); }
.read-at { font-size: 12px; margin-top: 16px; }
body.stale .read-at { color: #b3261e; }
"""

JS = """
// Refresh <main> in place every data-refresh seconds: fetch this URL, swap the new <main>
// in. The document stays, so the scroll position and the search box are kept.
(function () {
  "use strict";
  var seconds = parseFloat(document.body.getAttribute("data-refresh")) || 0;
  var box = document.getElementById("autorefresh");
  if (!box) { return; }
  if (seconds <= 0) { box.checked = false; box.disabled = true; return; }
  box.checked = window.localStorage.getItem("qtl-autorefresh") !== "off";
  box.addEventListener("change", function () {
    window.localStorage.setItem("qtl-autorefresh", box.checked ? "on" : "off");
  });
  function refresh() {
    if (!box.checked || document.hidden) { return schedule(); }
    fetch(window.location.href, {credentials: "same-origin", cache: "no-store",
                                 headers: {"X-Requested-With": "refresh"}})
      .then(function (response) { return response.text(); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) {
          var x = window.scrollX, y = window.scrollY;
          main.replaceWith(fresh);
          window.scrollTo(x, y);
          document.body.classList.remove("stale");
        }
      })
      .catch(function () { document.body.classList.add("stale"); })
      .then(schedule);
  }
  function schedule() { window.setTimeout(refresh, seconds * 1000); }
  schedule();
})();
"""
