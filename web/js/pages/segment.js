// One segment: size over time with daily entered/exited bars, analytics with the
// index against everyone, overlap with the other segments, members (cursor paging,
// search, CSV export), the live change feed, the holdout report and the definition.
import { html, useEffect, useState } from "../lib/html.js";
import { api, optional, enc, download, qs } from "../lib/api.js";
import { num, pct, money, date, signed, toDate } from "../lib/format.js";
import { summarize, yamlText } from "../lib/definition.js";
import { SizeChart } from "../lib/charts.js";
import { Async, Card, Delta, Dialog, Empty, ErrorBox, Folder, Stat, Tag, profileHref, segHref, toast, useAsync, useDebounced, navigate } from "../lib/ui.js";
import { LiveFeed } from "./dashboard.js";

async function loadHistory(id) {
  const daily = await optional(`/v1/segments/${enc(id)}/daily?days=90`, { route: "/v1/segments/{}/daily" });
  if (daily) return daily.points;
  const sizes = await api(`/v1/segments/${enc(id)}/sizes`);
  const points = sizes.points.map((p) => ({ at: p.at, size: p.size }));
  // a size holds until the next change: draw the last one up to now
  if (points.length) points.push({ at: new Date().toISOString(), size: points[points.length - 1].size });
  return points;
}

const METRICS = [
  ["conversion_rate", "Conversion rate", pct],
  ["repeat_purchase_rate", "Repeat-purchase rate", pct],
  ["aov", "Average order value", (v) => money(v)],
  ["revenue_per_member", "Revenue per member", (v) => money(v)],
  ["orders_per_member", "Orders per member", (v) => num(v, 2)],
  ["sessions_per_member", "Sessions per member", (v) => num(v, 1)],
  ["page_views_per_member", "Page views per member", (v) => num(v, 1)],
  ["open_rate", "Email open rate", pct],
  ["click_rate", "Email click rate", pct],
  ["average_clv", "Average CLV (12 months)", (v) => money(v)],
  ["average_churn_risk", "Average churn risk", pct],
];

function IndexBar({ index }) {
  if (index === null || index === undefined) return html`<span class="muted">–</span>`;
  const w = Math.min(index / 3, 1) * 100;
  return html`<div class="row" style=${{ flexWrap: "nowrap" }}><div class="bar" style=${{ width: "70px" }} aria-hidden="true"><span style=${{ width: w + "%", background: index >= 1 ? "var(--good)" : "var(--bad)" }}></span></div>
    <strong>${num(index * 100)}</strong></div>`;
}

function Metrics({ id }) {
  const state = useAsync(() => optional(`/v1/analytics/metrics${qs({ segment: id })}`), [id]);
  if (state.data === null) return null;
  return html`<${Card} title="How this segment performs (last 30 days)" id="metrics">
    <${Async} state=${state}>${(d) => {
      const s = d.segments[0];
      return html`<p class="small muted">Index: 100 = like everyone; 200 = twice as high. ${num(s.buyers)} buyers, ${num(s.orders)} orders, ${money(s.revenue)} revenue in the period.</p>
      <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Metric</th><th scope="col" class="num">Segment</th><th scope="col" class="num">Everyone</th><th scope="col">Index</th></tr></thead>
      <tbody>${METRICS.filter(([k]) => s[k]).map(([k, label, f]) => html`<tr><td>${label}</td><td class="num">${f(s[k].value)}</td><td class="num">${f(s[k].base)}</td><td><${IndexBar} index=${s[k].index} /></td></tr>`)}</tbody></table></div>`;
    }}</${Async}>
  </${Card}>`;
}

function Overlap({ id }) {
  const state = useAsync(() => optional(`/v1/analytics/overlap`), [id]);
  if (state.data === null) return null;
  return html`<${Card} title="Overlap with other segments" id="overlap" actions=${html`<a class="btn small" href=${`#/overlap?segments=${enc(id)}`}>Heatmap</a>`}>
    <${Async} state=${state}>${(d) => {
      const i = d.segments.indexOf(id);
      if (i < 0) return html`<${Empty}>Not evaluated yet.</${Empty}>`;
      const rows = d.segments.map((s, j) => ({ s, share: d.row_share[i][j], n: d.intersections[i][j] }))
        .filter((r) => r.s !== id && r.n > 0).sort((a, b) => b.share - a.share).slice(0, 8);
      return rows.length ? html`<p class="small muted">Share of this segment's members who are also in…</p><div class="table-wrap" tabindex="0"><table><tbody>${rows.map((r) => html`<tr>
        <td><a href=${segHref(r.s)}>${r.s}</a></td>
        <td style=${{ width: "40%" }}><div class="bar" aria-hidden="true"><span style=${{ width: (r.share * 100).toFixed(1) + "%" }}></span></div></td>
        <td class="num">${pct(r.share)}</td><td class="num small muted hide-phone">${num(r.n)}</td></tr>`)}</tbody></table></div>`
        : html`<${Empty}>No member is in another segment.</${Empty}>`;
    }}</${Async}>
  </${Card}>`;
}

function Members({ id, version }) {
  const [q, setQ] = useState("");
  const dq = useDebounced(q, 300);
  const [cursors, setCursors] = useState([null]);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => setCursors([null]), [dq, version]);
  const state = useAsync(() => api(`/v1/segments/${enc(id)}/members${qs({ limit: 25, cursor, q: dq, columns: "true" })}`), [id, cursor, dq, version]);
  const [busy, setBusy] = useState(false);
  const exportCsv = async () => {
    setBusy(true);
    try {
      try {
        await download(`/v1/segments/${enc(id)}/export?format=csv&flat=true`, `${id}.csv`);
      } catch (e) {
        if (e.status !== 422) throw e;
        await download(`/v1/segments/${enc(id)}/export?format=csv`, `${id}.csv`);
      }
      toast("Export downloaded");
    } catch (e) { toast(`Export failed: ${e.message}`, "bad"); }
    setBusy(false);
  };
  return html`<${Card} title="Members" id="members-card" actions=${html`
      <label class="sr-only" for="member-search">Search members</label>
      <input id="member-search" type="search" placeholder="Search name, email, id" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <button class="btn" id="export-csv" onClick=${exportCsv} disabled=${busy}>${busy ? "Exporting…" : "Export CSV"}</button>`}>
    <${Async} state=${state}>${(d) => html`
      ${d.rows ? html`<div class="table-wrap" tabindex="0"><table id="members">
        <thead><tr><th scope="col">Name</th><th scope="col" class="hide-phone">Email</th><th scope="col" class="num">LTV</th><th scope="col" class="num hide-phone">Orders</th><th scope="col">Member since</th><th scope="col">Last order</th></tr></thead>
        <tbody>${d.rows.length ? d.rows.map((r) => html`<tr data-profile=${r.profile_id}>
          <td><a href=${profileHref(r.profile_id)}>${r.name || r.profile_id}</a>${r.held_out ? html` <span class="pill warn">holdout</span>` : null}</td>
          <td class="hide-phone">${r.email || html`<span class="muted">–</span>`}</td><td class="num">${money(r.ltv)}</td><td class="num hide-phone">${num(r.orders)}</td><td>${date(r.since)}</td><td>${date(r.last_order_at)}</td></tr>`)
          : html`<tr><td colspan="6"><${Empty}>No member matches.</${Empty}></td></tr>`}</tbody></table></div>`
      : html`<ul id="members" class="rank">${d.members.map((m) => html`<li><a href=${profileHref(m)}>${m}</a></li>`)}</ul>`}
      <div class="pager">
        <span class="muted small">${d.matches !== undefined && dq ? `${num(d.matches)} of ${num(d.size)} members match` : `${num(d.size)} members`}</span>
        <button class="btn small" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>← Previous</button>
        <button class="btn small" id="members-next" disabled=${!d.next_cursor} onClick=${() => setCursors([...cursors, d.next_cursor])}>Next →</button>
      </div>`}</${Async}>
  </${Card}>`;
}

function Experiment({ id }) {
  const [goal, setGoal] = useState("conversion");
  const state = useAsync(() => api(`/v1/segments/${enc(id)}/experiment${qs({ goal })}`), [id, goal]);
  return html`<${Card} title="Holdout experiment" id="experiment" actions=${html`<label class="sr-only" for="goal">Goal</label>
    <select id="goal" value=${goal} onChange=${(e) => setGoal(e.target.value)}>
      <option value="conversion">Conversion</option><option value="revenue_per_member">Revenue per member</option><option value="orders_per_member">Orders per member</option></select>`}>
    <${Async} state=${state}>${(d) => {
      const r = d.report || {};
      const fmt = goal === "revenue_per_member" ? (v) => money(v) : goal === "conversion" ? pct : (v) => num(v, 2);
      return html`<div class="stats">
        <${Stat} label="Treatment" value=${fmt(r.treatment?.value)} hint=${`${num(r.treatment?.n)} members`} />
        <${Stat} label="Holdout" value=${fmt(r.holdout?.value)} hint=${`${num(r.holdout?.n)} members`} />
        <${Stat} label="Lift" value=${pct(r.relative_lift)} hint=${r.p_value !== undefined ? `p = ${num(r.p_value, 3)}` : ""} />
      </div>
      <p><span class="pill ${r.verdict === "significant" ? "good" : "warn"}">${String(r.verdict || "").replace(/_/g, " ")}</span>
        ${r.reason ? ` ${r.reason}.` : ""}${r.still_needed ? ` About ${num(r.still_needed)} more members are needed to tell.` : ""}
        <span class="small muted"> (${r.test || ""}${r.ci ? `, ${pct(r.level, 0)} interval of the lift ${fmt(r.ci.low ?? r.ci[0])} to ${fmt(r.ci.high ?? r.ci[1])}` : ""})</span></p>`;
    }}</${Async}>
  </${Card}>`;
}

export default function Segment({ id }) {
  const seg = useAsync(() => api(`/v1/segments/${enc(id)}`), [id]);
  const everyone = useAsync(() => optional("/v1/dashboard").then((d) => (d ? { size: d.profiles } : null)), []).data;
  const history = useAsync(() => loadHistory(id), [id]);
  const [size, setSize] = useState(null);
  const [bump, setBump] = useState(0);
  const [confirm, setConfirm] = useState(false);
  const [deleteError, setDeleteError] = useState(null);
  const [codeAs, setCodeAs] = useState("yaml");
  useEffect(() => { if (seg.data) setSize(seg.data.size); }, [seg.data]);
  const onChange = (c) => setSize((s) => (s === null ? s : s + (c.entered ? 1 : -1)));
  const remove = async () => {
    try {
      await api(`/v1/segments/${enc(id)}`, { method: "DELETE" });
      toast(`Deleted ${id}`);
      navigate("#/segments");
    } catch (e) { setDeleteError(e); }
  };
  return html`<${Async} state=${seg}>${(s) => {
    const d = s.definition;
    return html`
    <div class="page-head">
      <div>
        <p class="small"><a href="#/segments">← Segments</a></p>
        <h1>${d.name || s.id}</h1>
        <p class="sub">${d.description || ""}</p>
        <div class="row small muted"><span class="mono">${s.id}</span> · <span class="pill">${d.mode || "realtime"}</span> · version ${s.version}
          ${(d.tags || []).map((t) => html`<${Tag}>${t}</${Tag}>`)}${d.folder ? html`<span class="pill"><${Folder} path=${d.folder} /></span>` : null}</div>
      </div>
      <div class="actions">
        <a class="btn primary" id="edit-segment" href=${`#/segments/${enc(id)}/edit`}>Edit</a>
        <a class="btn" id="duplicate-segment" href=${`#/new?from=${enc(id)}`}>Duplicate</a>
        <button class="btn danger" id="delete-segment" onClick=${() => setConfirm(true)}>Delete</button>
      </div>
    </div>
    <div class="stats">
      <${Stat} id="segment-size" label="Members now" value=${html`<span id="segment-size-value">${num(size)}</span>`} hint="updates live" />
      ${everyone?.size ? html`<${Stat} label="Share of all customers" value=${pct(size / everyone.size)} hint=${`of ${num(everyone.size)} profiles`} />` : null}
      <${HistoryStats} history=${history.data} />
    </div>
    <p class="summary-text"><strong>Who:</strong> ${d.condition ? summarize(d.condition) : d.members ? `${num(d.members.length)} listed profiles` : "–"}</p>
    <${Card} title="Size over time" id="size-chart">
      <${Async} state=${history}>${(points) => html`<${SizeChart} points=${points} label="Members" />`}</${Async}>
    </${Card}>
    <div class="grid-2-1">
      <div><${Members} id=${id} version=${bump} /><${Metrics} id=${id} /></div>
      <div>
        <${Card} title="Live changes" id="live-card"><${LiveFeed} segments=${[id]} onChange=${onChange} id="live-changes" /></${Card}>
        <${Overlap} id=${id} />
      </div>
    </div>
    ${d.holdout ? html`<${Experiment} id=${id} />` : null}
    <${Card} title="Definition" id="definition-card" actions=${html`<div class="tabs" role="tablist" style=${{ margin: 0, border: 0 }}>
        <button role="tab" aria-selected=${codeAs === "yaml"} onClick=${() => setCodeAs("yaml")}>YAML</button>
        <button role="tab" aria-selected=${codeAs === "json"} onClick=${() => setCodeAs("json")}>JSON</button></div>`}>
      <pre class="code-view" id="definition" tabindex="0">${codeAs === "yaml" ? yamlText(d) : JSON.stringify(d, null, 2)}</pre>
    </${Card}>
    <${Dialog} title=${`Delete “${d.name || s.id}”?`} open=${confirm} onClose=${() => setConfirm(false)} actions=${html`
      <button class="btn" onClick=${() => setConfirm(false)}>Cancel</button>
      <button class="btn danger solid" id="confirm-delete" onClick=${remove}>Delete segment</button>`}>
      <p>All ${num(size)} members exit (reason <code>deleted</code>); webhooks and the live feed see the exits. This cannot be undone.</p>
      <${ErrorBox} error=${deleteError} />
    </${Dialog}>`;
  }}</${Async}>`;
}

function HistoryStats({ history }) {
  if (!history?.length) return null;
  const t = (p) => toDate(p.day || p.at).getTime();
  const last = history[history.length - 1];
  const cut = t(last) - 7 * 864e5;
  const before = history.filter((p) => t(p) <= cut);
  const base = before.length ? before[before.length - 1].size : null;
  const ch = base === null ? null : last.size - base;
  const week = history.filter((p) => t(p) > cut);
  const entered = week.reduce((a, p) => a + (p.entered || 0), 0);
  const exited = week.reduce((a, p) => a + (p.exited || 0), 0);
  return html`
    <${Stat} label="Change, 7 days" value=${html`<${Delta} value=${ch} text=${signed(ch, base ? ch / base : null)} />`} />
    ${last.entered !== undefined ? html`<${Stat} label="Entered / exited, 7 days" value=${html`<span class="in">+${num(entered)}</span> / <span class="out">−${num(exited)}</span>`} />` : null}`;
}
