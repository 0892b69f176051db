// segflow UI: plain JS over the JSON API. Hash routes: #/, #/segment/ID, #/profiles, #/profile/ID.
"use strict";

const view = document.getElementById("view");
let stream = null;

function key() { return localStorage.getItem("segflow.adminKey") || ""; }

// Build DOM nodes without innerHTML so ids and traits from events are never markup.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, opts = {}) {
  const r = await fetch(path, {
    ...opts,
    headers: { "Authorization": "Bearer " + key(), "Content-Type": "application/json", ...(opts.headers || {}) },
  });
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 || r.status === 403) { showKeyForm(); }
  if (!r.ok) {
    const e = body && body.error;
    const detail = e && e.errors && e.errors.length ? ": " + e.errors.map(x => `${x.path}: ${x.message}`).join("; ") : "";
    throw new Error((e ? e.message : r.statusText) + detail);
  }
  return body;
}

function showKeyForm() {
  document.getElementById("key-form").hidden = false;
  document.getElementById("logout").hidden = true;
}

document.getElementById("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem("segflow.adminKey", document.getElementById("key-input").value.trim());
  document.getElementById("key-form").hidden = true;
  document.getElementById("logout").hidden = false;
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  localStorage.removeItem("segflow.adminKey");
  showKeyForm();
});

function sparkline(points, width = 120, height = 24) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  if (!points.length) return svg;
  const ys = points.map(p => p.size);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const step = points.length > 1 ? width / (points.length - 1) : 0;
  const d = ys.map((y, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - 2 - (y - lo) / span * (height - 4)).toFixed(1)}`).join(" ");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "none");
  path.setAttribute("stroke", "#2d6cdf"); path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  return svg;
}

function render(...nodes) { view.replaceChildren(...nodes); }
function fail(e) { render(h("p", { class: "error" }, String(e.message || e))); }

async function segmentsPage() {
  const { segments } = await api("/v1/segments");
  const rows = segments.map(s => {
    const spark = h("td", {});
    const tr = h("tr", { "data-segment": s.id },
      h("td", {}, h("a", { href: `#/segment/${encodeURIComponent(s.id)}` }, s.id)),
      h("td", {}, s.definition.name || ""),
      h("td", {}, s.definition.mode || ""),
      h("td", { class: "num size" }, s.size ?? "–"),
      spark,
      h("td", {}, (s.definition.tags || []).map(t => h("span", { class: "tag" }, t))));
    api(`/v1/segments/${encodeURIComponent(s.id)}/sizes`).then(r => spark.append(sparkline(r.points))).catch(() => {});
    return tr;
  });
  render(h("h1", {}, "Segments"),
    h("table", { id: "segments" },
      h("thead", {}, h("tr", {}, ["id", "name", "mode", "size", "size over time", "tags"].map(c => h("th", {}, c)))),
      h("tbody", {}, rows)));
}

async function segmentPage(id) {
  const enc = encodeURIComponent(id);
  const [seg, members, sizes] = await Promise.all([
    api(`/v1/segments/${enc}`), api(`/v1/segments/${enc}/members?limit=50`), api(`/v1/segments/${enc}/sizes`),
  ]);
  const changes = h("ul", { class: "changes", id: "live-changes" },
    h("li", { class: "waiting" }, "waiting for changes… (entries and exits appear here as they happen)"));
  const memberList = h("ul", { id: "members" }, members.members.map(m =>
    h("li", {}, h("a", { href: `#/profile/${encodeURIComponent(m)}` }, m))));
  const more = members.next_cursor ? h("p", {}, `… ${members.size} members in all`) : null;
  render(
    h("h1", {}, seg.definition.name || seg.id, " ", h("small", {}, `v${seg.version}`)),
    h("p", {}, seg.definition.description || ""),
    h("p", {}, "size ", h("b", { id: "segment-size" }, members.size), " ", sparkline(sizes.points, 240, 40)),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Definition"), h("pre", { id: "definition" }, JSON.stringify(seg.definition, null, 2))),
      h("div", { class: "card" }, h("h2", {}, "Live changes"), changes)),
    h("div", { class: "card" }, h("h2", {}, "Members"), memberList, more));
  // EventSource cannot send the key in a header: a 5-minute stream token opens the stream
  const { token } = await api("/v1/stream-tokens", { method: "POST" });
  const src = new EventSource(`/v1/changes/stream?segment_id=${enc}&api_key=${encodeURIComponent(token)}`);
  const onChange = (ev) => {
    const c = JSON.parse(ev.data);
    changes.querySelector(".waiting")?.remove();
    changes.prepend(h("li", { class: c.entered ? "in" : "out" },
      `${c.at} `, h("a", { href: `#/profile/${encodeURIComponent(c.profile_id)}` }, c.profile_id),
      ` ${c.entered ? "entered" : "exited"} (${c.reason})`));
  };
  src.addEventListener("entered", onChange);
  src.addEventListener("exited", onChange);
  stream = src;
}

async function profilesPage(q) {
  const r = await api(`/v1/profiles?limit=100${q ? "&q=" + encodeURIComponent(q) : ""}`);
  const input = h("input", { id: "profile-search", placeholder: "profile id…", value: q || "" });
  const form = h("form", { onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/profile/${encodeURIComponent(input.value.trim())}`; } },
    input, h("button", { type: "submit" }, "Open"));
  render(h("h1", {}, "Profiles"), form,
    h("ul", {}, r.profiles.map(p => h("li", {}, h("a", { href: `#/profile/${encodeURIComponent(p.profile_id)}` }, p.profile_id), ` last seen ${p.last_seen}`))));
}

function explainNode(n) {
  const label = n.op === "compare" ? `${n.feature.kind} ${n.feature.event || n.feature.trait || ""} ${n.feature.measure || ""} = ${JSON.stringify(n.feature.value)} ${JSON.stringify(n.comparison)}`
    : n.op === "in_segment" ? `in_segment ${n.segment}` : n.op;
  const kids = (n.items || []).concat(n.item ? [n.item] : []);
  return h("div", { class: "node" }, h("span", { class: String(n.value) }, n.value ? "✔ " : "✘ "), label, kids.map(explainNode));
}

async function profilePage(id) {
  const enc = encodeURIComponent(id);
  const p = await api(`/v1/profiles/${enc}`);
  const explainOut = h("div", { id: "explain" });
  const segIds = (await api("/v1/segments")).segments.map(s => s.id);
  const select = h("select", { id: "explain-segment" }, segIds.map(s => h("option", { value: s }, s)));
  const explain = async () => {
    try {
      const r = await api(`/v1/segments/${encodeURIComponent(select.value)}/explain?profile_id=${enc}`);
      explainOut.replaceChildren(h("p", {}, r.member ? "member" : "not a member"), explainNode(r.condition));
    } catch (e) { explainOut.replaceChildren(h("p", { class: "error" }, e.message)); }
  };
  const kv = (obj) => h("table", {}, h("tbody", {}, Object.entries(obj).map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))))));
  render(
    h("h1", {}, "Profile ", p.profile_id),
    h("p", {}, `first seen ${p.first_seen}, last seen ${p.last_seen}; `,
      p.identities.map(i => h("span", { class: "tag" }, `${i.kind}: ${i.value}`))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Segments"),
        h("ul", { id: "profile-segments" }, Object.entries(p.segments).map(([s, since]) =>
          h("li", {}, h("a", { href: `#/segment/${encodeURIComponent(s)}` }, s), since ? ` since ${since}` : "")))),
      h("div", { class: "card" }, h("h2", {}, "Explain"), select, " ",
        h("button", { id: "explain-button", onclick: explain }, "Why?"), explainOut)),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Traits"), h("div", { id: "traits" }, kv(p.traits))),
      h("div", { class: "card" }, h("h2", {}, "Computed traits"), kv(p.computed_traits))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Cart"), h("pre", {}, JSON.stringify(p.cart, null, 2))),
      h("div", { class: "card" }, h("h2", {}, "Orders"), h("pre", {}, JSON.stringify(p.orders, null, 2)))),
    h("div", { class: "card" }, h("h2", {}, "Recent events"),
      h("table", {}, h("tbody", {}, p.recent_events.map(e =>
        h("tr", {}, h("td", {}, e.timestamp), h("td", {}, e.type), h("td", {}, e.event || ""), h("td", {}, JSON.stringify(e.properties || {}))))))));
}

async function route() {
  if (stream) { stream.close(); stream = null; }
  if (!key()) { showKeyForm(); render(h("p", {}, "Enter an admin key (segflow keys create --kind admin) to start.")); return; }
  document.getElementById("logout").hidden = false;
  document.getElementById("key-form").hidden = true;
  const [, page, ...rest] = location.hash.replace(/^#/, "").split("/");
  const arg = decodeURIComponent(rest.join("/"));
  try {
    if (page === "segment") await segmentPage(arg);
    else if (page === "profile") await profilePage(arg);
    else if (page === "profiles") await profilesPage(arg);
    else await segmentsPage();
  } catch (e) { fail(e); }
}

window.addEventListener("hashchange", route);
route();
