// xTCPView: reads the filters from the URL, fetches one JSON endpoint per chart, draws them.
// window.xtcpView tells what was drawn (points per chart), for people and for the browser test.
"use strict";

const FILTERS = ["range", "location", "netns", "state", "prefix", "cookie"];
const COLORS = ["#2458c6", "#d9480f", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#e03131", "#5c7cfa",
                "#66a80f", "#862e9c", "#495057", "#c2255c"];
const view = window.xtcpView = { drawn: {}, data: {}, errors: [], generation: 0, ready: false, charts: [] };
const plots = {};

function state() {
  const q = new URLSearchParams(location.search);
  const s = {};
  for (const k of FILTERS) { if (q.get(k)) s[k] = q.get(k); }
  return s;
}

function query(s, omit) {
  const q = new URLSearchParams();
  for (const k of FILTERS) { if (s[k] && k !== omit) q.set(k, s[k]); }
  return q.toString();
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error || r.statusText);
  return doc;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function setStatus(text, error) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

function fillSelect(name, values, current) {
  const sel = document.querySelector(`select[name=${name}]`);
  sel.replaceChildren(el("option", { value: "", text: "all" }));
  const all = new Set(values.map(String));
  if (current) all.add(current);
  for (const v of all) sel.append(el("option", { value: v, text: v === "" ? "(none)" : v }));
  sel.value = current || "";
}

function card(id, title) {
  let c = document.getElementById("card-" + id);
  if (!c) {
    c = el("div", { class: "card", id: "card-" + id, "data-chart": id },
      el("span", { class: "meta" }), el("h2", { text: title }), el("div", { class: "body" }));
    document.getElementById(id.startsWith("conn_") ? "conn-charts" : "charts").append(c);
  }
  return c;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

function drawTime(id, doc) {
  const c = card(id, doc.title);
  const body = c.querySelector(".body");
  const names = Object.keys(doc.series);
  const data = [doc.t, ...names.map(n => doc.series[n])];
  const points = names.reduce((n, k) => n + doc.series[k].filter(v => v !== null).length, 0);
  c.classList.toggle("empty", points === 0);
  if (plots[id]) { plots[id].destroy(); delete plots[id]; }
  body.replaceChildren();
  if (points === 0) return 0;
  const opts = {
    width: Math.max(300, body.clientWidth || 540), height: 220,
    scales: { x: { time: true, range: id.startsWith("conn_") ? undefined : [doc.from, doc.to] } },
    axes: [{}, { label: doc.unit || "", size: 60 }],
    series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5,
                                          points: { show: doc.t.length < 60 }, spanGaps: false }))],
  };
  plots[id] = new uPlot(opts, data, body);
  return points;
}

function drawHeatmap(id, doc) {
  const c = card(id, doc.title);
  const body = c.querySelector(".body");
  c.classList.toggle("empty", doc.cells.length === 0);
  body.replaceChildren();
  if (!doc.cells.length) return 0;
  const canvas = el("canvas", { class: "heatmap" });
  body.append(canvas);
  const w = canvas.width = Math.max(300, body.clientWidth || 540), h = canvas.height = 260;
  const g = canvas.getContext("2d");
  const left = 56, bottom = 20, top = 6;
  let bmin = Infinity, bmax = -Infinity, nmax = 1;
  for (const [, b, n] of doc.cells) { bmin = Math.min(bmin, b); bmax = Math.max(bmax, b); nmax = Math.max(nmax, n); }
  const rows = bmax - bmin + 1, cols = Math.max(1, Math.ceil((doc.to - doc.from) / doc.step));
  const cw = (w - left) / cols, ch = (h - bottom - top) / rows;
  for (const [t, b, n] of doc.cells) {
    const a = Math.log(1 + n) / Math.log(1 + nmax);
    g.fillStyle = `rgba(36, 88, 198, ${0.12 + 0.88 * a})`;
    g.fillRect(left + (t - doc.from) / doc.step * cw, top + (bmax - b) * ch, Math.max(cw, 1), Math.max(ch - 1, 1));
  }
  g.fillStyle = "#6b7385"; g.font = "11px system-ui";
  for (let b = bmin; b <= bmax; b++) {
    const us = 2 ** b;
    g.fillText(us >= 1000 ? `${fmt(us / 1000)} ms` : `${us} µs`, 2, top + (bmax - b + 0.6) * ch);
  }
  g.fillText(new Date(doc.from * 1000).toLocaleTimeString(), left, h - 5);
  const end = new Date(doc.to * 1000).toLocaleTimeString();
  g.fillText(end, w - g.measureText(end).width - 2, h - 5);
  return doc.cells.length;
}

function drawTable(id, doc) {
  const c = card(id, doc.title);
  const body = c.querySelector(".body");
  c.classList.toggle("empty", doc.rows.length === 0);
  body.replaceChildren();
  if (!doc.rows.length) return 0;
  const barCol = doc.columns.indexOf(id === "talkers" ? "bytes" : id === "prefixes" ? "p90_rtt_ms" : "");
  const max = barCol >= 0 ? Math.max(...doc.rows.map(r => r[barCol])) || 1 : 1;
  const t = el("table", { class: "data" }, el("tr", {}, ...doc.columns.map(n => el("th", { text: n }))));
  for (const r of doc.rows) {
    const tr = el("tr");
    r.forEach((v, i) => {
      const name = doc.columns[i];
      if (name === "top_cookie") {
        const a = el("a", { class: "cookie", text: String(v), "data-cookie": String(v) });
        a.addEventListener("click", () => navigate({ ...state(), cookie: String(v) }));
        tr.append(el("td", {}, a));
      } else if (i === barCol) {
        const span = el("span");
        span.style.width = `${(100 * v / max).toFixed(1)}%`;
        tr.append(el("td", { class: "bar" }, span, el("b", { text: fmt(v) })));
      } else {
        tr.append(el("td", { text: fmt(v) }));
      }
    });
    t.append(tr);
  }
  body.append(t);
  return doc.rows.length;
}

const DRAW = { time: drawTime, heatmap: drawHeatmap, table: drawTable };

async function loadChart(meta, s, gen) {
  const c = card(meta.name, meta.title);
  try {
    const doc = await getJSON(`/api/chart/${meta.name}?${query(s, "cookie")}`);
    if (gen !== view.generation) return;
    view.drawn[meta.name] = DRAW[doc.kind](meta.name, doc);
    view.data[meta.name] = doc;
    c.querySelector(".meta").textContent = `${doc.ms} ms`;
    c.querySelector(".body").append(...(doc.note ? [el("p", { class: "note", text: doc.note })] : []));
  } catch (err) {
    view.drawn[meta.name] = 0;
    view.errors.push(`${meta.name}: ${err.message}`);
    c.querySelector(".body").replaceChildren(el("div", { class: "error", text: err.message }));
  }
}

async function loadConnection(s, gen) {
  const sec = document.getElementById("connection");
  sec.hidden = !s.cookie;
  if (!s.cookie) return;
  document.getElementById("conn-title").textContent = s.cookie;
  try {
    const doc = await getJSON(`/api/connection?${query(s)}`);
    if (gen !== view.generation) return;
    const info = document.getElementById("conn-info");
    info.replaceChildren();
    if (doc.info.length) {
      const cols = Object.keys(doc.info[0]);
      info.append(el("tr", {}, ...cols.map(k => el("th", { text: k }))));
      for (const row of doc.info) info.append(el("tr", {}, ...cols.map(k => el("td", { text: fmt(row[k]) }))));
    }
    const col = n => doc.rows.map(r => r[doc.columns.indexOf(n)]);
    const t = col("t");
    const charts = {
      conn_rtt: { title: "RTT and RTT variance", unit: "ms", series: { rtt_ms: col("rtt_ms"), rtt_var_ms: col("rtt_var_ms") } },
      conn_cwnd: { title: "Congestion window", unit: "segments", series: { cwnd: col("cwnd") } },
      conn_bytes: { title: "Bytes acked and received", unit: "bytes",
                    series: { bytes_acked: col("bytes_acked"), bytes_received: col("bytes_received") } },
    };
    for (const [id, ch] of Object.entries(charts)) {
      view.drawn[id] = drawTime(id, { ...ch, t, from: t[0], to: t[t.length - 1] });
    }
  } catch (err) {
    view.errors.push(`connection: ${err.message}`);
    document.getElementById("conn-info").replaceChildren(el("tr", {}, el("td", { class: "error", text: err.message })));
  }
}

async function loadChoices(s) {
  try {
    const doc = await getJSON(`/api/filters?${query(s, "cookie")}`);
    fillSelect("location", doc.location, s.location);
    fillSelect("netns", doc.netns, s.netns);
    fillSelect("state", doc.state, s.state);
  } catch (err) {
    view.errors.push(`filters: ${err.message}`);
  }
}

async function load() {
  const s = state();
  const gen = ++view.generation;
  view.ready = false;
  view.drawn = {};
  view.data = {};
  view.errors = [];
  const form = document.getElementById("filters");
  form.range.value = s.range || "1h";
  form.prefix.value = s.prefix || "";
  form.cookie.value = s.cookie || "";
  setStatus("loading…");
  const started = performance.now();
  await Promise.all([loadChoices(s), loadConnection(s, gen), ...view.charts.map(m => loadChart(m, s, gen))]);
  if (gen !== view.generation) return;
  view.loadMs = Math.round(performance.now() - started);
  view.ready = true;
  setStatus(view.errors.length ? `${view.errors.length} errors: ${view.errors[0]}` : `loaded in ${view.loadMs} ms`,
            view.errors.length > 0);
}

function navigate(s) {
  const q = query(s);
  history.pushState(null, "", q ? `?${q}` : location.pathname);
  load();
}

async function main() {
  const form = document.getElementById("filters");
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const s = {};
    for (const k of FILTERS) { const v = form[k].value.trim(); if (v) s[k] = v; }
    navigate(s);
  });
  for (const name of ["range", "location", "netns", "state"]) {
    form[name].addEventListener("change", () => form.requestSubmit());
  }
  document.getElementById("conn-close").addEventListener("click", () => navigate({ ...state(), cookie: "" }));
  window.addEventListener("popstate", load);
  try {
    view.charts = (await getJSON("/api/charts")).charts;
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
  await load();
}

main();
