// Dashboard: totals, the live ingestion rate, the biggest movers, a live feed of
// entries and exits, and data-quality alerts. Refreshes its numbers every 15 s.
import { html, useEffect, useState } from "../lib/html.js";
import { api, optional } from "../lib/api.js";
import { followChanges } from "../lib/stream.js";
import { num, signed, ago } from "../lib/format.js";
import { Async, Card, Delta, Empty, ErrorBox, Stat, segHref, profileHref, useAsync, useTick } from "../lib/ui.js";

export function LiveFeed({ segments = [], names = {}, onChange, limit = 50, id = "live-feed" }) {
  const [items, setItems] = useState([]);
  const [state, setState] = useState("connecting");
  useTick(30_000);
  useEffect(() => followChanges({
    segments,
    onState: setState,
    onChange: (c, kind) => {
      setItems((xs) => [{ ...c, kind, key: c.seq }, ...xs].slice(0, limit));
      onChange?.(c, kind);
    },
  }), [segments.join(",")]);
  return html`<div>
    <p class="small muted"><span class="live-dot ${state === "live" ? "live" : ""}" aria-hidden="true"></span>${state === "live" ? "Live" : state === "unavailable" ? "Live feed unavailable" : state === "reconnecting" ? "Reconnecting…" : "Connecting…"}</p>
    <ul class="feed" id=${id} aria-live="polite" aria-label="Membership changes as they happen">
      ${items.length ? items.map((c) => html`<li key=${c.key}>
        <span class=${c.entered ? "in" : "out"}>${c.entered ? "+ entered" : "− exited"}</span>
        <a href=${profileHref(c.profile_id)}>${c.profile_id}</a>
        ${segments.length === 1 ? null : html`<span class="muted">${c.entered ? "→" : "←"}</span> <a href=${segHref(c.segment_id)}>${names[c.segment_id] || c.segment_id}</a>`}
        <span class="pill">${c.reason}</span>
        <span class="when">${ago(c.at)}</span>
      </li>`) : html`<li class="waiting muted">Waiting for changes… entries and exits appear here as customers act.</li>`}
    </ul>
  </div>`;
}

function Movers({ title, rows, id }) {
  return html`<${Card} title=${title} id=${id}>
    ${rows?.length ? html`<ol class="rank">${rows.map((s) => html`<li>
      <a href=${segHref(s.id)}>${s.name || s.id}</a>
      <span><span class="muted small">${num(s.size)} · </span><${Delta} value=${s.change_7d} text=${signed(s.change_7d, s.change_7d_pct)} /></span>
    </li>`)}</ol>` : html`<${Empty}>No change in the last 7 days.</${Empty}>`}
  </${Card}>`;
}

function Alerts({ alerts }) {
  const [all, setAll] = useState(false);
  const shown = all ? alerts : alerts.slice(0, 4);
  return html`<${Card} title="Data quality" id="alerts">
    ${alerts.length ? html`<ul class="rank">${shown.map((a) => html`<li>
      <span><span class="pill ${a.kind === "event_stopped" ? "bad" : "warn"}">${a.kind === "event_stopped" ? "stopped" : "new event"}</span> ${a.message}</span>
      <span class="muted small nowrap">${a.last_seen ? ago(a.last_seen) : ""}</span>
    </li>`)}</ul>
    ${alerts.length > 4 ? html`<button class="btn small" style=${{ marginTop: ".5rem" }} onClick=${() => setAll(!all)}>${all ? "Show fewer" : `Show all ${alerts.length}`}</button>` : null}`
    : html`<p class="muted">All events arriving as usual. ✓</p>`}
  </${Card}>`;
}

/** The five biggest risers and fallers over 7 days, from the segment summary. */
function movers(summary) {
  const rows = (summary || []).filter((s) => s.change_7d !== null && s.change_7d !== undefined && s.id !== "everyone")
    .map((s) => {
      const before = s.size - s.change_7d;
      return { ...s, change_7d_pct: before > 0 ? s.change_7d / before : null };
    });
  return {
    growth: rows.filter((s) => s.change_7d > 0).sort((a, b) => b.change_7d - a.change_7d).slice(0, 5),
    decline: rows.filter((s) => s.change_7d < 0).sort((a, b) => a.change_7d - b.change_7d).slice(0, 5),
  };
}

export default function Dashboard() {
  const [tick, setTick] = useState(0);
  useEffect(() => { const t = setInterval(() => setTick((x) => x + 1), 15_000); return () => clearInterval(t); }, []);
  const dash = useAsync(() => optional("/v1/dashboard"), [tick]);
  const summary = useAsync(() => (dash.data === null ? optional("/v1/segments/summary") : null), [tick, dash.data === null]);
  const segs = useAsync(() => api("/v1/segments"), []);
  const names = Object.fromEntries((segs.data?.segments || []).map((s) => [s.id, s.definition.name || s.id]));
  const d = dash.data;
  // the dashboard's change_7d_pct is in percent; the UI formats ratios
  const ratio = (xs) => xs.map((x) => ({ ...x, change_7d_pct: x.change_7d_pct === null ? null : x.change_7d_pct / 100 }));
  const moved = d?.growth ? { growth: ratio(d.growth), decline: ratio(d.decline) } : movers(summary.data?.segments);
  const everyone = (segs.data?.segments || []).find((s) => s.id === "everyone");
  return html`
    <div class="page-head">
      <div><h1>Dashboard</h1><p class="sub">Your customers and audiences, live.</p></div>
      <div class="actions"><a class="btn primary" href="#/new">+ New segment</a></div>
    </div>
    ${dash.error ? html`<${ErrorBox} error=${dash.error} retry=${dash.reload} />` : null}
    <div class="stats" id="totals">
      ${d ? html`
        <${Stat} id="stat-profiles" label="Profiles" value=${num(d.profiles)} />
        <${Stat} id="stat-events-today" label="Events today" value=${num(d.events_today)} hint=${`${num(d.events_last_hour)} in the last hour`} />
        <${Stat} id="stat-rate" label="Ingestion rate" value=${`${num(d.ingest_rate, 1)}/s`} hint="events per second, last minute" />
        <${Stat} id="stat-segments" label="Segments" value=${num(d.segments)} />`
      : html`
        ${everyone ? html`<${Stat} id="stat-profiles" label="Profiles" value=${num(everyone.size)} hint="members of “everyone”" />` : null}
        <${Stat} id="stat-segments" label="Segments" value=${num(segs.data?.segments.length)} />`}
    </div>
    <div class="grid">
      ${summary.data || d ? html`
        <${Movers} title="Growing fastest (7 days)" rows=${moved.growth} id="growth" />
        <${Movers} title="Shrinking fastest (7 days)" rows=${moved.decline} id="decline" />` : null}
      ${d ? html`<${Alerts} alerts=${d.alerts || []} />` : null}
    </div>
    <div class="grid-2-1">
      <${Card} title="Live: who is entering and leaving" id="feed-card"><${LiveFeed} names=${names} /></${Card}>
      <${Card} title="Largest segments" id="largest">
        <${Async} state=${segs}>${(x) => html`<ol class="rank">${[...x.segments].sort((a, b) => (b.size || 0) - (a.size || 0)).slice(0, 8).map((s) => html`<li>
          <a href=${segHref(s.id)}>${s.definition.name || s.id}</a><span class="num">${num(s.size)}</span></li>`)}</ol>`}</${Async}>
      </${Card}>
    </div>`;
}
