// dsrlb live view: fetches /api/series and /api/status every few seconds
// and draws, per VIP, new sessions/s per backend (SVG lines), the share of
// sessions against the ring share (SVG bars) and the state table. Every
// text from the server goes through textContent: nothing is parsed as HTML.
"use strict";

const REFRESH_MS = 3000;
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#d946ef", "#0d9488", "#ea580c", "#7c3aed", "#65a30d", "#0891b2", "#be123c"];
let windowSeconds = 3600;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function pct(x) { return (100 * x).toFixed(1) + "%"; }

function clock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map(n => String(n).padStart(2, "0")).join(":");
}

function ago(iso, nowMs) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function stateBadge(state) {
  return el("span", { class: "state state-" + state }, state);
}

// chart draws new sessions/s per backend against time, with markers.
function chart(vip, colors, series) {
  const W = 760, H = 250, L = 40, R = 12, T = 30, B = 26;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-vip": vip.name, role: "img",
    "aria-label": "new sessions per second per backend for VIP " + vip.name });
  let to = series.now, from = series.from;
  if (to - from < 60000) from = to - 60000;
  let top = 0;
  for (const b of vip.backends) for (const p of b.points) top = Math.max(top, p.rate);
  top = niceMax(top * 1.1);
  const x = t => L + (W - L - R) * (t - from) / (to - from);
  const y = r => T + (H - T - B) * (1 - r / top);

  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4, yy = y(v);
    s.append(svg("line", { class: i ? "grid" : "axis", x1: L, x2: W - R, y1: yy, y2: yy }));
    s.append(svg("text", { x: L - 6, y: yy + 4, "text-anchor": "end" }, +v.toFixed(2) + ""));
  }
  for (let i = 0; i <= 5; i++) {
    const t = from + (to - from) * i / 5;
    s.append(svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" }, clock(t)));
  }
  s.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));

  vip.backends.forEach(b => {
    let d = "";
    b.points.forEach((p, i) => {
      d += (i === 0 || p.gap ? "M" : "L") + x(p.t).toFixed(1) + " " + y(p.rate).toFixed(1) + " ";
    });
    const path = svg("path", { class: "series", "data-backend": b.name, "data-points": b.points.length,
      d: d.trim(), stroke: colors[b.name] });
    path.append(svg("title", {}, b.name + ": new sessions/s"));
    s.append(path);
  });

  // One dashed line per change; changes to the same state at the same
  // moment share one label, and labels close together go on other rows.
  const groups = [];
  for (const m of series.markers.filter(m => m.vip === vip.name && m.t >= from)) {
    const xx = x(m.t);
    const g = svg("g", { class: "marker state-" + m.to, "data-backend": m.backend, "data-to": m.to });
    g.append(svg("line", { x1: xx, x2: xx, y1: T - 6, y2: H - B }));
    g.append(svg("title", {}, clock(m.t) + " " + m.backend + ": " + (m.from || "new") + " \u2192 " + m.to +
      (m.reason ? " (" + m.reason + ")" : "")));
    s.append(g);
    const same = groups.find(o => o.to === m.to && Math.abs(o.x - xx) < 3);
    if (same) same.names.push(m.backend);
    else groups.push({ x: xx, to: m.to, names: [m.backend] });
  }
  let prev = null;
  for (const grp of groups) {
    grp.row = prev && grp.x - prev.x < 150 ? (prev.row + 1) % 2 : 0;
    const right = grp.x > W - 150;
    s.append(svg("text", { class: "marker-label state-" + grp.to, x: grp.x + (right ? -4 : 4), y: T - 17 + 11 * grp.row,
      "text-anchor": right ? "end" : "start" }, grp.names.join(", ") + " \u2192 " + grp.to));
    prev = grp;
  }
  return s;
}

// shares draws, per backend, its share of sessions over the window (solid)
// against its ring share averaged over the window (dashed outline).
function shares(vip, colors) {
  const W = 480, row = 40, L = 70, R = 12, top = 8;
  const H = top + row * vip.backends.length + 4;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "shares", "data-vip": vip.name, role: "img",
    "aria-label": "share of sessions against ring share for VIP " + vip.name });
  const bw = W - L - R;
  vip.backends.forEach((b, i) => {
    const y0 = top + i * row;
    s.append(svg("text", { class: "label", x: 0, y: y0 + 15 }, b.name));
    s.append(svg("rect", { class: "track", x: L, y: y0 + 4, width: bw, height: 14 }));
    s.append(svg("rect", { class: "share", "data-backend": b.name, x: L, y: y0 + 4,
      width: (bw * b.share).toFixed(1), height: 14, fill: colors[b.name] }));
    s.append(svg("rect", { class: "ring", "data-backend": b.name, x: L, y: y0 + 2,
      width: Math.max(0.5, bw * b.ring_share_avg).toFixed(1), height: 18 }));
    s.append(svg("text", { x: L, y: y0 + 33 }, "sessions " + pct(b.share) + " (" + b.sessions + ")  \u00b7  ring " +
      pct(b.ring_share_avg) + " avg, " + pct(b.ring_share) + " now"));
  });
  return s;
}

function table(vip, status, nowMs) {
  const t = el("table", { class: "backends", "data-vip": vip.name });
  const head = el("tr");
  for (const h of ["Backend", "State", "Reason", "Last probe reply", "Ring share", "Sessions", "Last packet"]) head.append(el("th", {}, h));
  t.appendChild(el("thead")).append(head);
  const body = t.appendChild(el("tbody"));
  const st = {};
  for (const b of (status && status.backends) || []) st[b.name] = b;
  for (const b of vip.backends) {
    const tr = el("tr", { "data-backend": b.name, "data-state": b.state });
    tr.append(el("td", {}, b.name));
    tr.appendChild(el("td", {})).append(stateBadge(b.state));
    tr.append(el("td", {}, b.reason || ""));
    tr.append(el("td", { class: "reply" }, b.last_reply || ""));
    tr.append(el("td", { class: "num" }, pct(b.ring_share)));
    tr.append(el("td", { class: "num" }, String(b.sessions)));
    const lp = st[b.name] ? st[b.name].last_packet_at : b.last_packet_at;
    tr.append(el("td", {}, ago(lp, nowMs)));
    body.append(tr);
  }
  return t;
}

function render(series, status) {
  const main = document.getElementById("vips");
  main.replaceChildren();
  if (!series.vips.length) {
    main.append(el("p", { class: "empty" }, "No samples yet."));
    return;
  }
  const byName = {};
  for (const v of (status && status.vips) || []) byName[v.name] = v;
  for (const vip of series.vips) {
    const colors = {};
    vip.backends.forEach((b, i) => { colors[b.name] = PALETTE[i % PALETTE.length]; });
    const sec = el("section", { class: "vip", "data-vip": vip.name });
    const h = el("h2", {}, "VIP " + vip.name);
    const sv = byName[vip.name];
    const meta = (sv ? sv.address + " ports " + sv.ports.join(", ") + " \u00b7 " : "") +
      vip.sessions + " sessions in the window";
    h.append(el("span", { class: "meta" }, meta));
    sec.append(h);
    const legend = el("div", { class: "legend" });
    for (const b of vip.backends) {
      const item = el("span");
      const sw = svg("svg", { width: 14, height: 10, viewBox: "0 0 14 10" });
      sw.append(svg("rect", { width: 14, height: 10, rx: 2, fill: colors[b.name] }));
      item.append(sw, document.createTextNode(b.name + " "), stateBadge(b.state));
      legend.append(item);
    }
    sec.append(legend);
    const row = el("div", { class: "row" });
    const left = el("div"), right = el("div");
    left.append(el("h3", {}, "New sessions per second"), chart(vip, colors, series));
    right.append(el("h3", {}, "Share of sessions (bar) vs ring share (dashed)"), shares(vip, colors));
    row.append(left, right);
    sec.append(row, table(vip, sv, Date.now()));
    main.append(sec);
  }
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

async function refresh() {
  const err = document.getElementById("error");
  try {
    const [series, status] = await Promise.all([
      getJSON("/api/series?window=" + windowSeconds),
      getJSON("/api/status").catch(() => null),
    ]);
    render(series, status);
    if (status && status.node) {
      const n = status.node;
      document.getElementById("node").textContent = "on " + n.interface + " (XDP " + n.xdp_mode + ") \u00b7 " + n.config;
    }
    document.getElementById("updated").textContent = "updated " + clock(Date.now()) +
      (series.now ? " \u00b7 last sample " + clock(series.now) : "");
    err.hidden = true;
  } catch (e) {
    err.textContent = "Cannot refresh: " + e.message;
    err.hidden = false;
  }
}

function loop() {
  refresh().finally(() => setTimeout(loop, REFRESH_MS));
}

document.addEventListener("DOMContentLoaded", () => {
  const buttons = document.querySelectorAll("#windows button");
  const mark = () => buttons.forEach(b => b.classList.toggle("active", +b.dataset.window === windowSeconds));
  buttons.forEach(b => b.addEventListener("click", () => { windowSeconds = +b.dataset.window; mark(); refresh(); }));
  mark();
  loop();
});
