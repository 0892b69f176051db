// The segment list: search, tag and folder filters, sorting; size, share, 7/30-day
// change and a sparkline on a true time axis per segment.
import { html, useMemo, useState } from "../lib/html.js";
import { api, optional, enc } from "../lib/api.js";
import { num, pct, signed, ago } from "../lib/format.js";
import { Async, Delta, Empty, Folder, Sparkline, Tag, segHref, useAsync } from "../lib/ui.js";

/** The summary route, or the same rows assembled from the older routes. */
async function loadSummary() {
  const summary = await optional("/v1/segments/summary");
  if (summary) return summary.segments;
  const { segments } = await api("/v1/segments");
  const total = segments.find((s) => s.id === "everyone")?.size;
  return Promise.all(segments.map(async (s) => {
    const sizes = await api(`/v1/segments/${enc(s.id)}/sizes`).catch(() => ({ points: [] }));
    const points = sizes.points;
    const at = (days) => {
      const t = Date.now() - days * 864e5;
      const before = points.filter((p) => new Date(p.at).getTime() <= t);
      return before.length ? before[before.length - 1].size : points.length ? 0 : null;
    };
    const change = (days) => (s.size !== null && at(days) !== null ? s.size - at(days) : null);
    return {
      id: s.id, name: s.definition.name, description: s.definition.description, tags: s.definition.tags || [],
      folder: s.definition.folder, mode: s.definition.mode || "realtime", version: s.version, updated_at: null,
      size: s.size, share: total ? s.size / total : null, change_7d: change(7), change_30d: change(30),
      series: points.filter((p) => new Date(p.at).getTime() >= Date.now() - 31 * 864e5),
    };
  }));
}

const COLUMNS = [
  ["name", "Segment"], ["size", "Size"], ["share", "Share"], ["change_7d", "7 days"], ["change_30d", "30 days"], ["updated_at", "Last edited"],
];

export default function Segments({ params }) {
  const state = useAsync(loadSummary, []);
  const [q, setQ] = useState(params.q || "");
  const [tag, setTag] = useState(params.tag || "");
  const [sort, setSort] = useState(["size", -1]);
  return html`
    <div class="page-head">
      <div><h1>Segments</h1><p class="sub">Audiences that update the moment customers act.</p></div>
      <div class="actions"><a class="btn" href="#/overlap">Compare overlap</a><a class="btn primary" href="#/new">+ New segment</a></div>
    </div>
    <${Async} state=${state}>${(rows) => html`<${SegmentTable} rows=${rows} q=${q} setQ=${setQ} tag=${tag} setTag=${setTag} sort=${sort} setSort=${setSort} />`}</${Async}>`;
}

function SegmentTable({ rows, q, setQ, tag, setTag, sort, setSort }) {
  const tags = useMemo(() => [...new Set(rows.flatMap((r) => r.tags || []))].sort(), [rows]);
  const needle = q.trim().toLowerCase();
  const shown = rows
    .filter((r) => !tag || (r.tags || []).includes(tag) || (r.folder && (r.folder === tag || r.folder.startsWith(tag + "/"))))
    .filter((r) => !needle || [r.id, r.name, r.description, ...(r.tags || [])].some((x) => x && x.toLowerCase().includes(needle)))
    .sort((a, b) => {
      const [k, dir] = sort;
      const x = k === "name" ? (a.name || a.id).toLowerCase() : a[k], y = k === "name" ? (b.name || b.id).toLowerCase() : b[k];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  // every folder and its parents ("Lifecycle", "Lifecycle/Retention"): a parent shows its subfolders' segments
  const folders = [...new Set(rows.flatMap((r) => (r.folder ? r.folder.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/")) : [])))].sort();
  const header = (k, label) => {
    const active = sort[0] === k;
    return html`<th scope="col" class=${k === "name" || k === "updated_at" ? "" : "num"} aria-sort=${active ? (sort[1] > 0 ? "ascending" : "descending") : "none"}>
      <button class="sort" onClick=${() => setSort([k, active ? -sort[1] : k === "name" ? 1 : -1])}>${label}${active ? (sort[1] > 0 ? " ▲" : " ▼") : ""}</button></th>`;
  };
  return html`<section class="card">
    <div class="row" style=${{ marginBottom: ".6rem" }}>
      <label class="sr-only" for="segment-search">Search segments</label>
      <input id="segment-search" class="search" type="search" placeholder="Search by name, id or tag" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <span class="muted small">${num(shown.length)} of ${num(rows.length)}</span>
    </div>
    <div class="row" role="group" aria-label="Filter by tag or folder">
      <${Tag} active=${!tag} onClick=${() => setTag("")}>All</${Tag}>
      ${folders.map((f) => html`<${Tag} active=${tag === f} onClick=${() => setTag(tag === f ? "" : f)}><${Folder} path=${f} /></${Tag}>`)}
      ${tags.map((t) => html`<${Tag} active=${tag === t} onClick=${() => setTag(tag === t ? "" : t)}>${t}</${Tag}>`)}
    </div>
    <div class="table-wrap" tabindex="0"><table id="segments">
      <thead><tr>${COLUMNS.slice(0, 3).map(([k, l]) => header(k, l))}<th scope="col" class="hide-phone">Last 30 days</th>${COLUMNS.slice(3).map(([k, l]) => header(k, l))}</tr></thead>
      <tbody>${shown.length ? shown.map((r) => html`<tr data-segment=${r.id} key=${r.id}>
        <td><a href=${segHref(r.id)}><strong>${r.name || r.id}</strong></a>
          <div class="small muted">${r.id} · ${r.mode}${r.folder ? html` · <${Folder} path=${r.folder} />` : ""} ${(r.tags || []).map((t) => html`<span class="tag">${t}</span>`)}</div></td>
        <td class="num size">${num(r.size)}</td>
        <td class="num">${pct(r.share)}</td>
        <td class="hide-phone"><${Sparkline} points=${r.series} label=${`${r.name || r.id}: size over the last 30 days`} /></td>
        <td class="num"><${Delta} value=${r.change_7d} text=${signed(r.change_7d)} /></td>
        <td class="num"><${Delta} value=${r.change_30d} text=${signed(r.change_30d)} /></td>
        <td class="small muted">${r.updated_at ? ago(r.updated_at) : `v${r.version}`}</td>
      </tr>`) : html`<tr><td colspan="7"><${Empty}>No segment matches.</${Empty}></td></tr>`}</tbody>
    </table></div>
  </section>`;
}
