// Settings: API keys (create, revoke), webhooks (create, delete) with their delivery
// status, and the dead-letter list with replay.
import { html, useState } from "../lib/html.js";
import { api, enc, qs } from "../lib/api.js";
import { num, ago, dateTime } from "../lib/format.js";
import { Async, Card, Empty, ErrorBox, segHref, toast, useAsync } from "../lib/ui.js";

function Keys() {
  const state = useAsync(() => api("/v1/keys"), []);
  const [kind, setKind] = useState("write");
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault(); setError(null);
    try { setCreated(await api("/v1/keys", { method: "POST", body: { kind, name } })); setName(""); state.reload(); } catch (x) { setError(x); }
  };
  const revoke = async (k) => {
    if (!confirm(`Revoke ${k.name || k.id}? Clients using it get 401 at once.`)) return;
    try { await api(`/v1/keys/${enc(k.id)}`, { method: "DELETE" }); toast(`Revoked ${k.name || k.id}`); state.reload(); } catch (x) { setError(x); }
  };
  return html`<${Card} title="API keys" id="keys">
    <p class="small muted">Write keys send events (Segment's libraries use them as the basic-auth user); admin keys read and manage everything.</p>
    <${Async} state=${state}>${(keys) => html`<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Created</th><th scope="col">Status</th><th scope="col"></th></tr></thead>
      <tbody>${keys.map((k) => html`<tr><td>${k.name || html`<span class="muted">${k.id}</span>`}</td><td><span class="pill">${k.kind}</span></td><td>${dateTime(k.created_at)}</td>
        <td>${k.revoked_at ? html`<span class="pill bad">revoked ${ago(k.revoked_at)}</span>` : html`<span class="pill good">active</span>`}</td>
        <td class="right">${k.revoked_at ? null : html`<button class="btn small danger" onClick=${() => revoke(k)}>Revoke</button>`}</td></tr>`)}</tbody></table></div>`}</${Async}>
    <form class="row" style=${{ marginTop: ".8rem" }} onSubmit=${create}>
      <label for="key-kind">Kind</label><select id="key-kind" value=${kind} onChange=${(e) => setKind(e.target.value)}><option value="write">write</option><option value="admin">admin</option></select>
      <label for="key-name">Name</label><input id="key-name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="e.g. storefront" />
      <button class="btn primary" type="submit">Create key</button>
    </form>
    ${created ? html`<div class="warn-box" role="status" style=${{ marginTop: ".6rem" }}>New ${created.kind} key (shown once, copy it now): <code id="new-key">${created.token}</code></div>` : null}
    <${ErrorBox} error=${error} />
  </${Card}>`;
}

function Webhooks() {
  const state = useAsync(() => Promise.all([api("/v1/webhooks"), api("/v1/segments"), api("/v1/webhooks/deliveries?limit=1000")]), []);
  const [form, setForm] = useState({ segment_id: "", url: "", events: ["entered", "exited"] });
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault(); setError(null);
    try { setCreated(await api("/v1/webhooks", { method: "POST", body: form })); state.reload(); } catch (x) { setError(x); }
  };
  const remove = async (w) => {
    if (!confirm(`Delete the webhook to ${w.url}?`)) return;
    try { await api(`/v1/webhooks/${enc(w.id)}`, { method: "DELETE" }); state.reload(); } catch (x) { setError(x); }
  };
  const toggleEvent = (ev) => setForm((f) => ({ ...f, events: f.events.includes(ev) ? f.events.filter((x) => x !== ev) : [...f.events, ev] }));
  return html`<${Card} title="Webhooks" id="webhooks">
    <p class="small muted">Each entry or exit is POSTed, signed (<code>X-Segflow-Signature</code>), retried with backoff; after the last try it goes to the dead letters below.</p>
    <${Async} state=${state}>${([hooks, segs, dels]) => {
      const stats = {};
      for (const d of dels.deliveries) { const s = (stats[d.webhook_id] ||= { pending: 0, delivered: 0, dead: 0, last: null }); s[d.status]++; if (d.last_error) s.last = d.last_error; }
      return html`${hooks.webhooks.length ? html`<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Segment</th><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Deliveries</th><th scope="col"></th></tr></thead>
        <tbody>${hooks.webhooks.map((w) => { const s = stats[w.id] || { pending: 0, delivered: 0, dead: 0 }; return html`<tr>
          <td><a href=${segHref(w.segment_id)}>${w.segment_id}</a></td><td class="mono small">${w.url}</td><td>${w.events.join(", ")}</td>
          <td><span class="pill good">${num(s.delivered)} delivered</span> <span class="pill">${num(s.pending)} pending</span> ${s.dead ? html`<span class="pill bad">${num(s.dead)} dead</span>` : null}
            ${s.last ? html`<div class="small muted">last error: ${s.last}</div>` : null}</td>
          <td class="right"><button class="btn small danger" onClick=${() => remove(w)}>Delete</button></td></tr>`; })}</tbody></table></div>`
        : html`<${Empty}>No webhook yet.</${Empty}>`}
        <form style=${{ marginTop: ".8rem" }} onSubmit=${create}>
          <div class="fields">
            <div class="field"><label for="wh-segment">Segment</label><select id="wh-segment" required value=${form.segment_id} onChange=${(e) => setForm({ ...form, segment_id: e.target.value })}>
              <option value="">choose…</option>${segs.segments.map((s) => html`<option value=${s.id}>${s.definition.name || s.id}</option>`)}</select></div>
            <div class="field"><label for="wh-url">URL</label><input id="wh-url" type="url" required placeholder="https://example.com/hooks/segflow" value=${form.url} onInput=${(e) => setForm({ ...form, url: e.target.value })} /></div>
            <fieldset class="field" style=${{ border: 0, padding: 0, margin: 0 }}><legend class="small muted">Send</legend>
              <div class="row">${["entered", "exited"].map((ev) => html`<label class="row" style=${{ gap: ".25rem" }}><input type="checkbox" checked=${form.events.includes(ev)} onChange=${() => toggleEvent(ev)} />${ev}</label>`)}</div></fieldset>
          </div>
          <button class="btn primary" type="submit" style=${{ marginTop: ".6rem" }}>Add webhook</button>
        </form>
        ${created ? html`<div class="warn-box" role="status" style=${{ marginTop: ".6rem" }}>Signing secret (shown once): <code>${created.secret}</code></div>` : null}`;
    }}</${Async}>
    <${ErrorBox} error=${error} />
  </${Card}>`;
}

function DeadLetters() {
  const state = useAsync(() => api(`/v1/webhooks/deliveries${qs({ status: "dead", limit: 200 })}`), []);
  const [error, setError] = useState(null);
  const replay = async (ids) => {
    try { const r = await api("/v1/webhooks/deliveries/replay", { method: "POST", body: ids ? { ids } : {} }); toast(`${num(r.replayed)} deliveries queued again`); state.reload(); } catch (x) { setError(x); }
  };
  return html`<${Card} title="Dead letters" id="dead-letters" actions=${state.data?.deliveries.length ? html`<button class="btn" onClick=${() => replay(null)}>Replay all</button>` : null}>
    <${Async} state=${state}>${(d) => d.deliveries.length ? html`<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Change</th><th scope="col">Webhook</th><th scope="col">Attempts</th><th scope="col">Last error</th><th scope="col"></th></tr></thead>
      <tbody>${d.deliveries.map((x) => html`<tr><td>${x.body.type} <span class="mono small">${x.body.profile_id}</span></td><td class="mono small">${x.webhook_id}</td><td class="num">${num(x.attempts)}</td>
        <td class="small">${x.last_error || "–"}</td><td class="right"><button class="btn small" onClick=${() => replay([x.id])}>Replay</button></td></tr>`)}</tbody></table></div>`
      : html`<p class="muted">No failed deliveries. ✓</p>`}</${Async}>
    <${ErrorBox} error=${error} />
  </${Card}>`;
}

export default function Settings() {
  return html`<div class="page-head"><div><h1>Settings</h1><p class="sub">Keys, destinations and their deliveries.</p></div></div>
    <${Keys} /><${Webhooks} /><${DeadLetters} />`;
}
