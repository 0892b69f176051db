// Journeys: how customers moved between the stages of a group (lifecycle stages,
// loyalty tiers, RFM groups) over a period, as a Sankey and a transition table.
import { html, useState } from "../lib/html.js";
import { api, qs } from "../lib/api.js";
import { num, pct, duration, date } from "../lib/format.js";
import { Sankey } from "../lib/charts.js";
import { Async, Card, Empty, Stat, Tag, useAsync } from "../lib/ui.js";

const PRESETS = [
  ["Lifecycle stages", ["new_visitors", "new_signups_30d", "first_time_purchasers_30d", "returning_customers", "loyal", "at_risk", "win_back", "lapsed_visitors"], "lifecycle"],
  ["Value tiers", ["vip_customers", "high_value_customers", "gold_tier"], "value"],
  ["RFM groups", ["rfm_champions", "loyal", "at_risk", "win_back"], "rfm"],
];

export default function Journeys() {
  const segs = useAsync(() => api("/v1/segments"), []);
  return html`<div class="page-head"><div><h1>Journeys</h1><p class="sub">How customers move between stages.</p></div></div>
    <${Async} state=${segs}>${(d) => html`<${Chooser} all=${d.segments} />`}</${Async}>`;
}

function Chooser({ all }) {
  const ids = new Set(all.map((s) => s.id));
  const presets = PRESETS.map(([label, order, tag]) => {
    const tagged = all.filter((s) => (s.definition.tags || []).includes(tag)).map((s) => s.id);
    const xs = [...order.filter((x) => ids.has(x)), ...tagged.filter((x) => !order.includes(x))];
    return [label, xs];
  }).filter(([, xs]) => xs.length > 1);
  const [stages, setStages] = useState(presets[0]?.[1] || all.slice(0, 3).map((s) => s.id));
  const [days, setDays] = useState(30);
  const names = Object.fromEntries(all.map((s) => [s.id, s.definition.name || s.id]));
  const move = (i, d) => { const xs = stages.slice(); [xs[i], xs[i + d]] = [xs[i + d], xs[i]]; setStages(xs); };
  return html`<${Card} title="Stages, in order" id="stages">
      <div class="row">${presets.map(([label, xs]) => html`<${Tag} onClick=${() => setStages(xs)} active=${xs.join() === stages.join()}>${label}</${Tag}>`)}</div>
      <ol class="rank">${stages.map((s, i) => html`<li><span>${i + 1}. ${names[s] || s}</span><span>
        <button class="icon-btn" aria-label=${`Move ${names[s]} up`} disabled=${i === 0} onClick=${() => move(i, -1)}>↑</button>
        <button class="icon-btn" aria-label=${`Move ${names[s]} down`} disabled=${i === stages.length - 1} onClick=${() => move(i, 1)}>↓</button>
        <button class="icon-btn" aria-label=${`Remove ${names[s]}`} onClick=${() => setStages(stages.filter((x) => x !== s))}>✕</button></span></li>`)}</ol>
      <div class="row"><label for="add-stage">Add a stage</label>
        <select id="add-stage" value="" onChange=${(e) => e.target.value && setStages([...stages, e.target.value])}>
          <option value="">choose…</option>${all.filter((s) => !stages.includes(s.id)).map((s) => html`<option value=${s.id}>${names[s.id]}</option>`)}</select>
        <label for="period">Period</label>
        <select id="period" value=${days} onChange=${(e) => setDays(Number(e.target.value))}><option value="7">last 7 days</option><option value="30">last 30 days</option><option value="90">last 90 days</option></select>
      </div>
    </${Card}>
    ${stages.length < 2 ? html`<${Empty}>Choose two stages or more.</${Empty}>` : html`<${Flows} stages=${stages} days=${days} names=${names} />`}`;
}

function Flows({ stages, days, names }) {
  const state = useAsync(() => {
    const to = new Date(Date.now() - 5000);
    const from = new Date(to.getTime() - days * 864e5);
    return api(`/v1/analytics/transitions${qs({ segment: stages, from: from.toISOString(), to: to.toISOString() })}`);
  }, [stages.join(","), days]);
  return html`<${Async} state=${state}>${(d) => {
    const label = (s) => (s === null ? "Outside" : names[s] || s);
    const places = [...d.stages, null];
    return html`
    <div class="stats">
      <${Stat} label="Stayed" value=${num(d.stayed)} /><${Stat} label="Moved forward" value=${num(d.forward)} tone="good" />
      <${Stat} label="Moved back" value=${num(d.backward)} /><${Stat} label="Entered the group" value=${num(d.entered)} /><${Stat} label="Left the group" value=${num(d.exited)} />
    </div>
    <${Card} title=${`Flows from ${date(d.from)} to ${date(d.to)}`} id="sankey">
      ${d.flows.length ? html`<${Sankey} stages=${d.stages} atA=${d.at_a} atB=${d.at_b} flows=${d.flows} labels=${names} />` : html`<${Empty}>Nobody moved.</${Empty}>`}
    </${Card}>
    <${Card} title="Transition table" id="transition-table">
      <div class="table-wrap" tabindex="0"><table><caption class="sr-only">Profiles by place at the start (rows) and at the end (columns)</caption>
        <thead><tr><th scope="col">From ↓ / to →</th>${places.map((p) => html`<th scope="col" class="num">${label(p)}</th>`)}</tr></thead>
        <tbody>${places.map((p, i) => html`<tr><th scope="row">${label(p)}</th>${d.counts[i].map((c, j) => html`<td class="num">${num(c)}${d.row_share[i][j] !== null && c ? html` <span class="muted small">${pct(d.row_share[i][j], 0)}</span>` : null}</td>`)}</tr>`)}</tbody>
      </table></div>
    </${Card}>
    ${d.time_to_enter?.length ? html`<${Card} title="Time from one stage to the next" id="time-to-enter">
      <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">From → to</th><th scope="col" class="num">Customers</th><th scope="col" class="num">Median</th><th scope="col" class="num">Middle half</th></tr></thead>
      <tbody>${d.time_to_enter.map((t) => html`<tr><td>${label(t.source)} → ${label(t.target)}</td><td class="num">${num(t.pairs)}</td>
        <td class="num">${t.pairs ? duration(t.median / 1000) : "–"}</td><td class="num">${t.pairs && t.percentiles ? `${duration(t.percentiles.p25 / 1000)} – ${duration(t.percentiles.p75 / 1000)}` : "–"}</td></tr>`)}</tbody></table></div>
    </${Card}>` : null}`;
  }}</${Async}>`;
}
