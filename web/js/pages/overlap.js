// Overlap of chosen segments: a heatmap (share of the row's members in the column
// segment, or Jaccard), the most common combinations and over-segmentation warnings.
import { html, useState } from "../lib/html.js";
import { api, qs } from "../lib/api.js";
import { num, pct } from "../lib/format.js";
import { Heatmap } from "../lib/charts.js";
import { Async, Card, Empty, Tag, useAsync } from "../lib/ui.js";

export default function Overlap({ params }) {
  const segs = useAsync(() => api("/v1/segments"), []);
  return html`<div class="page-head"><div><h1>Overlap</h1><p class="sub">How much your segments share their members.</p></div></div>
    <${Async} state=${segs}>${(d) => html`<${Chooser} all=${d.segments} initial=${params.segments ? params.segments.split(",") : null} />`}</${Async}>`;
}

function Chooser({ all, initial }) {
  const byTag = {};
  all.forEach((s) => (s.definition.tags || []).forEach((t) => (byTag[t] ||= []).push(s.id)));
  const biggest = [...all].sort((a, b) => (b.size || 0) - (a.size || 0)).filter((s) => s.id !== "everyone").map((s) => s.id);
  const start = initial?.length > 1 ? initial : initial?.length === 1 ? [...initial, ...biggest.filter((x) => x !== initial[0]).slice(0, 7)] : biggest.slice(0, 8);
  const [chosen, setChosen] = useState(start);
  const [metric, setMetric] = useState("row_share");
  const toggle = (id) => setChosen(chosen.includes(id) ? chosen.filter((x) => x !== id) : [...chosen, id]);
  const names = Object.fromEntries(all.map((s) => [s.id, s.definition.name || s.id]));
  return html`<${Card} title="Segments to compare" id="overlap-choose">
      <p class="small muted">Quick picks by tag:</p>
      <div class="row">${Object.entries(byTag).filter(([, xs]) => xs.length > 1).sort().map(([t, xs]) => html`<${Tag} onClick=${() => setChosen(xs)} active=${xs.length === chosen.length && xs.every((x) => chosen.includes(x))}>${t} (${xs.length})</${Tag}>`)}</div>
      <details><summary class="small">Choose segments (${chosen.length} chosen)</summary>
        <div class="fields" style=${{ marginTop: ".5rem" }}>${all.map((s) => html`<label class="row" style=${{ gap: ".3rem", color: "var(--text)" }}><input type="checkbox" checked=${chosen.includes(s.id)} onChange=${() => toggle(s.id)} />${names[s.id]}</label>`)}</div>
      </details>
    </${Card}>
    ${chosen.length < 2 ? html`<${Empty}>Choose two segments or more.</${Empty}>` : html`<${Result} chosen=${chosen} names=${names} metric=${metric} setMetric=${setMetric} />`}`;
}

function Result({ chosen, names, metric, setMetric }) {
  const state = useAsync(() => api(`/v1/analytics/overlap${qs({ segment: chosen, min_size: 1 })}`), [chosen.join(",")]);
  return html`<${Async} state=${state}>${(d) => html`
    <${Card} title="Heatmap" id="heatmap" actions=${html`<label for="metric" class="small">Show</label>
      <select id="metric" value=${metric} onChange=${(e) => setMetric(e.target.value)}><option value="row_share">% of the row's members also in the column</option><option value="jaccard">Jaccard similarity</option></select>`}>
      <${Heatmap} names=${d.segments.map((s) => names[s] || s)} values=${d[metric]} counts=${d.intersections}
        caption=${metric === "row_share" ? "Read across: the share of the row segment's members who are also in the column segment." : "Jaccard: members in both over members in either (1 = identical)."} />
      <p class="small muted">${num(d.in_any)} profiles are in at least one of these segments, out of ${num(d.n_profiles)}.</p>
    </${Card}>
    <div class="grid">
      <${Card} title="Most common combinations" id="combinations">
        <ol class="rank">${d.top_combinations.map((c) => html`<li><span>${c.segments.map((s) => names[s] || s).join(" + ")}</span><span class="num">${num(c.count)}</span></li>`)}</ol>
      </${Card}>
      <${Card} title="Only in one segment" id="exclusive">
        <ol class="rank">${d.segments.map((s, i) => html`<li><span>${names[s] || s}</span><span class="num">${num(d.exclusive[i])} <span class="muted small">of ${num(d.sizes[i])}</span></span></li>`)}</ol>
      </${Card}>
      <${Card} title="Warnings" id="overlap-warnings">
        ${d.warnings.length ? html`<ul class="rank">${d.warnings.map((w) => html`<li><span><span class="pill warn">${w.kind.replace(/_/g, " ")}</span> ${w.message}</span></li>`)}</ul>` : html`<p class="muted">No near-duplicates or tiny segments.</p>`}
      </${Card}>
    </div>`}</${Async}>`;
}
