// Priority groups: every group with its ordered segments and resolved sizes; one
// group's resolution (each segment's own size and the members it keeps), its order
// edited with buttons or as YAML, the dry-run diff reviewed before saving; new groups.
import { html, useState } from "../lib/html.js";
import { api, enc } from "../lib/api.js";
import { num } from "../lib/format.js";
import { yamlText } from "../lib/definition.js";
import { Async, Card, Empty, ErrorBox, navigate, segHref, toast, useAsync } from "../lib/ui.js";

export const groupHref = (id) => `#/groups/${encodeURIComponent(id)}`;
const TEMPLATE = "group: tiers\nname: Value tiers\nsegments:\n  - vip_customers\n  - high_value_customers\n";

/** The resolved sizes of a group: the live ones, else counted from its members. */
async function loadGroup(id) {
  const g = await api(`/v1/groups/${enc(id)}`);
  if (g.members.some((m) => m.size === null || m.size === undefined)) {
    const m = await api(`/v1/groups/${enc(id)}/members`);
    g.members = g.members.map((x) => ({ ...x, size: (m.members[x.segment] || []).length }));
  }
  return g;
}

/** Who a save moves, per resolved member in priority order. */
function DiffTable({ diff }) {
  const sample = (ids) => (ids.length ? html`<div class="small muted mono">${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", …" : ""}</div>` : null);
  return html`<div class="table-wrap" tabindex="0"><table id="group-diff"><caption class="small muted">Who the save moves (dry run)</caption>
    <thead><tr><th scope="col">Resolved member</th><th scope="col" class="num">Before</th><th scope="col" class="num">After</th><th scope="col">Entering</th><th scope="col">Leaving</th></tr></thead>
    <tbody>${diff.map((d) => html`<tr data-resolved=${d.segment_id}><td class="mono">${d.segment_id}</td><td class="num">${num(d.size_before)}</td><td class="num">${num(d.size_after)}</td>
      <td>${num(d.entering.length)}${sample(d.entering)}</td><td>${num(d.leaving.length)}${sample(d.leaving)}</td></tr>`)}</tbody></table></div>`;
}

/** A group as YAML: review (dry run) first, then save. `create`: POST a new one. */
function YamlEditor({ initial, create, groupId, onSaved, draft }) {
  const [text, setText] = useState(initial);
  const [review, setReview] = useState(null);
  const [error, setError] = useState(null);
  const body = draft && text === initial ? { body: draft } : { body: text, yaml: true };
  const url = create ? "/v1/groups" : `/v1/groups/${enc(groupId)}`;
  const send = (dry) => api(url + (dry ? "?dry_run=true" : ""), { method: create ? "POST" : "PUT", ...body });
  const doReview = async () => {
    setError(null); setReview(null);
    try { setReview(await send(true)); } catch (x) { setError(x); }
  };
  const save = async () => {
    setError(null);
    try { const r = await send(false); toast(`${r.group.definition.name || r.group.group}: ${r.status}`); setReview(null); onSaved(r); } catch (x) { setError(x); }
  };
  return html`<div>
    <label for="group-yaml">Group as YAML (segments highest priority first)</label>
    <textarea id="group-yaml" rows="8" spellcheck="false" value=${text} onInput=${(e) => { setText(e.target.value); setReview(null); }}></textarea>
    <div class="row" style=${{ marginTop: ".5rem" }}>
      <button class="btn" type="button" onClick=${doReview}>Review changes</button>
      ${review ? html`<button class="btn primary" type="button" onClick=${save}>${create ? "Create group" : "Save group"}</button>` : null}
    </div>
    ${review ? html`<${DiffTable} diff=${review.diff} />` : null}
    <${ErrorBox} error=${error} />
  </div>`;
}

function GroupList() {
  const state = useAsync(() => api("/v1/groups"), []);
  const [adding, setAdding] = useState(false);
  return html`<div class="page-head"><div><h1>Priority groups</h1><p class="sub">Ordered segments that put each customer in at most one of them.</p></div>
      <div class="actions"><button class="btn primary" onClick=${() => setAdding(!adding)} aria-expanded=${adding ? "true" : "false"}>+ New group</button></div></div>
    ${adding ? html`<${Card} title="New group" id="new-group"><${YamlEditor} initial=${TEMPLATE} create=${true} onSaved=${(r) => navigate(groupHref(r.group.group))} /></${Card}>` : null}
    <${Card} title="Groups" id="groups">
      <${Async} state=${state}>${(d) => d.groups.length ? html`<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Group</th><th scope="col">Segments, highest priority first (resolved members)</th><th scope="col" class="num">Resolved</th></tr></thead>
        <tbody>${d.groups.map((g) => html`<tr data-group=${g.group}><td><a href=${groupHref(g.group)}>${g.definition.name || g.group}</a><div class="small muted mono">${g.group} · v${g.version}</div></td>
          <td><ol class="inline-list">${g.members.map((m) => html`<li>${m.segment} <span class="muted">(${m.size === null || m.size === undefined ? "–" : num(m.size)})</span></li>`)}</ol></td>
          <td class="num">${g.members.every((m) => typeof m.size === "number") ? num(g.members.reduce((a, m) => a + m.size, 0)) : "–"}</td></tr>`)}</tbody></table></div>`
        : html`<${Empty}>No priority group yet.</${Empty}>`}</${Async}>
    </${Card}>`;
}

function GroupView({ id }) {
  const state = useAsync(() => Promise.all([loadGroup(id), api("/v1/segments")]), [id]);
  return html`<${Async} state=${state}>${([g, segs]) => html`<${GroupBody} g=${g} segs=${segs.segments} reload=${state.reload} />`}</${Async}>`;
}

function GroupBody({ g, segs, reload }) {
  const names = Object.fromEntries(segs.map((s) => [s.id, s.definition.name || s.id]));
  const sizes = Object.fromEntries(segs.map((s) => [s.id, s.size]));
  const [order, setOrder] = useState(g.definition.segments);
  const [error, setError] = useState(null);
  const draft = { ...g.definition, segments: order };
  delete draft.version;
  const move = (i, d) => { const xs = order.slice(); [xs[i], xs[i + d]] = [xs[i + d], xs[i]]; setOrder(xs); };
  const remove = async () => {
    if (!confirm(`Delete the group ${g.group}? Its resolved members' customers exit them.`)) return;
    try { await api(`/v1/groups/${enc(g.group)}`, { method: "DELETE" }); toast(`Deleted ${g.group}`); navigate("#/groups"); } catch (x) { setError(x); }
  };
  const total = g.members.reduce((a, m) => a + (m.size || 0), 0);
  return html`<div class="page-head"><div><p class="small"><a href="#/groups">Priority groups</a></p><h1 id="group-name">${g.definition.name || g.group}</h1>
      <p class="sub">${g.definition.description || html`<span class="mono">${g.group}</span>`} · version ${g.version} · ${num(total)} customers resolved</p></div>
      <div class="actions"><button class="btn danger" onClick=${remove}>Delete</button></div></div>
    <${ErrorBox} error=${error} />
    <${Card} title="Resolution" id="resolution">
      <p class="small muted">Each customer is kept by the first segment of the list they are in; the segments after it do not get them.</p>
      <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col" class="num">Priority</th><th scope="col">Segment</th><th scope="col" class="num">Segment size</th><th scope="col" class="num">Resolved members</th></tr></thead>
        <tbody>${g.members.map((m, i) => html`<tr data-segment=${m.segment}><td class="num">${i + 1}</td><td><a href=${segHref(m.segment)}>${names[m.segment] || m.segment}</a><div class="small muted mono">${m.resolved_id}</div></td>
          <td class="num">${sizes[m.segment] === undefined || sizes[m.segment] === null ? "–" : num(sizes[m.segment])}</td><td class="num resolved">${num(m.size)}</td></tr>`)}</tbody></table></div>
    </${Card}>
    <${Card} title="Edit the order" id="group-order">
      <ol class="rank" id="order-list">${order.map((s, i) => html`<li><span>${i + 1}. ${names[s] || s}</span><span>
        <button class="icon-btn" aria-label=${`Move ${names[s] || s} up`} disabled=${i === 0} onClick=${() => move(i, -1)}>↑</button>
        <button class="icon-btn" aria-label=${`Move ${names[s] || s} down`} disabled=${i === order.length - 1} onClick=${() => move(i, 1)}>↓</button>
        <button class="icon-btn" aria-label=${`Remove ${names[s] || s}`} disabled=${order.length === 1} onClick=${() => setOrder(order.filter((x) => x !== s))}>✕</button></span></li>`)}</ol>
      <div class="row" style=${{ margin: ".5rem 0 .8rem" }}><label for="add-group-segment">Add a segment</label>
        <select id="add-group-segment" value="" onChange=${(e) => e.target.value && setOrder([...order, e.target.value])}>
          <option value="">choose…</option>${segs.filter((s) => !order.includes(s.id)).map((s) => html`<option value=${s.id}>${names[s.id]}</option>`)}</select></div>
      <${YamlEditor} key=${order.join("|")} initial=${yamlText(draft)} draft=${draft} groupId=${g.group} onSaved=${reload} />
    </${Card}>`;
}

export default function Groups({ id }) {
  return id ? html`<${GroupView} id=${id} />` : html`<${GroupList} />`;
}
