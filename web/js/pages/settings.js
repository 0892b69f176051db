// Settings: API keys (create, revoke) and destinations of every type: their status,
// delivery counts and full syncs, the dead-letter list with replay, and a form per
// type (create, edit, delete) with the field mapping.
import { html, useEffect, useState } from "../lib/html.js";
import { api, enc, optional, qs } from "../lib/api.js";
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

const STATUS_TONE = { ok: "good", retrying: "warn", failing: "bad" };
const NO_MAPPING = new Set(["ad_audience", "esp"]); // they send their own email/phone traits

/** The form's state for a new destination, or for editing `d`. */
function formOf(d) {
  if (!d) return { type: "files", name: "", segments: [], groups: [], events: ["entered", "exited"], changes: true, batch_size: "", schedule: "", channel: "", unknown_consent: "", config: {}, fields: [] };
  return {
    type: d.type, name: d.name === d.id ? "" : d.name, segments: [...d.segments], groups: [...(d.groups || [])], events: [...d.events], changes: d.changes,
    batch_size: String(d.batch_size), schedule: d.schedule || "", channel: d.channel || "", unknown_consent: d.unknown_consent || "",
    config: Object.fromEntries(Object.entries(d.config).map(([k, v]) => [k, String(v)])),
    fields: NO_MAPPING.has(d.type) ? [] : Object.entries(d.fields).map(([trait, out]) => ({ trait, out })),
  };
}

/** The API body of a form: empty inputs left out, numbers as numbers. */
function bodyOf(form, type) {
  const config = {};
  for (const s of type?.settings || []) {
    const v = (form.config[s.name] ?? "").trim();
    if (v !== "") config[s.name] = s.input === "integer" ? Number(v) : v;
  }
  const body = { type: form.type, segments: form.segments, events: form.events, changes: form.changes, schedule: form.schedule.trim() || null, channel: form.channel || null, unknown_consent: form.unknown_consent || null, config };
  if (form.groups.length) body.groups = form.groups;
  if (form.name.trim()) body.name = form.name.trim();
  if (form.batch_size.trim()) body.batch_size = Number(form.batch_size);
  const fields = form.fields.filter((f) => f.trait.trim());
  if (fields.length) body.fields = Object.fromEntries(fields.map((f) => [f.trait.trim(), f.out.trim() || f.trait.trim()]));
  return body;
}

const selected = (e) => [...e.target.selectedOptions].map((o) => o.value);

/** Create or edit a destination: the common settings, the type's own (from
 * GET /v1/destinations/types) and the field mapping. */
function DestinationForm({ meta, editing, onSaved, onCancel }) {
  const [form, setForm] = useState(() => formOf(editing));
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const [types, segs, groups] = meta;
  const type = types.types.find((t) => t.type === form.type);
  const set = (k, v) => setForm((f) => ({ ...f, [k]: v }));
  const setCfg = (k, v) => setForm((f) => ({ ...f, config: { ...f.config, [k]: v } }));
  const setField = (i, k, v) => setForm((f) => ({ ...f, fields: f.fields.map((x, j) => (j === i ? { ...x, [k]: v } : x)) }));
  const toggleEvent = (ev) => set("events", form.events.includes(ev) ? form.events.filter((x) => x !== ev) : [...form.events, ev]);
  const submit = async (e) => {
    e.preventDefault(); setError(null);
    try {
      const body = bodyOf(form, type);
      const out = editing ? await api(`/v1/destinations/${enc(editing.id)}`, { method: "PUT", body }) : await api("/v1/destinations", { method: "POST", body });
      if (!editing && out.config?.secret) setSecret(out.config.secret);
      toast(editing ? `Saved ${out.name}` : `Added ${out.name}`);
      onSaved(out);
    } catch (x) { setError(x); }
  };
  const cfgInput = (s) => {
    const id = `dest-cfg-${s.name}`;
    const value = form.config[s.name] ?? "";
    const input = s.input === "choice"
      ? html`<select id=${id} value=${value} required=${s.required} onChange=${(e) => setCfg(s.name, e.target.value)}>
          <option value="">${s.default ? `default (${s.default})` : "choose…"}</option>${s.choices.map((c) => html`<option value=${c}>${c}</option>`)}</select>`
      : html`<input id=${id} type=${s.input === "integer" ? "number" : s.input === "secret" ? "password" : "text"} min=${s.input === "integer" ? 0 : undefined}
          required=${s.required && !(editing && s.input === "secret")} value=${value} placeholder=${s.default != null ? String(s.default) : editing && s.input === "secret" ? "unchanged" : ""}
          autocomplete="off" onInput=${(e) => setCfg(s.name, e.target.value)} />`;
    return html`<div class="field"><label for=${id}>${s.name}${s.required ? " *" : ""}</label>${input}<span class="small muted">${s.description}</span></div>`;
  };
  return html`<form id="dest-form" onSubmit=${submit} style=${{ marginTop: ".8rem" }} aria-label=${editing ? `Edit ${editing.name}` : "New destination"}>
    <h3>${editing ? `Edit ${editing.name}` : "New destination"}</h3>
    <div class="fields">
      <div class="field"><label for="dest-type">Type</label><select id="dest-type" value=${form.type} disabled=${!!editing} onChange=${(e) => setForm((f) => ({ ...f, type: e.target.value, config: {} }))}>
        ${types.types.map((t) => html`<option value=${t.type}>${t.type}</option>`)}</select></div>
      <div class="field"><label for="dest-name">Name</label><input id="dest-name" value=${form.name} placeholder="e.g. CRM stream" onInput=${(e) => set("name", e.target.value)} /></div>
      <div class="field"><label for="dest-segments">Segments</label><select id="dest-segments" multiple size="4" onChange=${(e) => set("segments", selected(e))}>
        ${segs.segments.map((s) => html`<option value=${s.id} selected=${form.segments.includes(s.id)}>${s.definition.name || s.id}</option>`)}</select></div>
      ${groups ? html`<div class="field"><label for="dest-groups">Priority groups</label><select id="dest-groups" multiple size="4" onChange=${(e) => set("groups", selected(e))}>
        ${groups.groups.map((g) => html`<option value=${g.group} selected=${form.groups.includes(g.group)}>${g.definition.name || g.group}</option>`)}</select></div>` : null}
    </div>
    <div class="fields" style=${{ marginTop: ".7rem" }}>
      <fieldset class="field" style=${{ border: 0, padding: 0, margin: 0 }}><legend class="small muted">Send</legend>
        <div class="row">${types.events.map((ev) => html`<label class="row" style=${{ gap: ".25rem" }}><input type="checkbox" checked=${form.events.includes(ev)} onChange=${() => toggleEvent(ev)} />${ev}</label>`)}
          <label class="row" style=${{ gap: ".25rem" }}><input id="dest-changes" type="checkbox" checked=${form.changes} onChange=${(e) => set("changes", e.target.checked)} />as they happen</label></div></fieldset>
      <div class="field"><label for="dest-batch">Batch size</label><input id="dest-batch" type="number" min="1" value=${form.batch_size} placeholder=${form.type === "webhook" ? "1" : "100"} onInput=${(e) => set("batch_size", e.target.value)} /></div>
      <div class="field"><label for="dest-schedule">Full sync schedule (cron, UTC)</label><input id="dest-schedule" value=${form.schedule} placeholder="e.g. 0 4 * * *" onInput=${(e) => set("schedule", e.target.value)} /></div>
      <div class="field"><label for="dest-channel">Consent channel</label><select id="dest-channel" value=${form.channel} onChange=${(e) => set("channel", e.target.value)}>
        <option value="">none (no consent check)</option>${types.channels.map((c) => html`<option value=${c}>${c}</option>`)}</select></div>
      <div class="field"><label for="dest-unknown">Unknown consent</label><select id="dest-unknown" value=${form.unknown_consent} disabled=${!form.channel} onChange=${(e) => set("unknown_consent", e.target.value)}>
        <option value="">server default (by region)</option>${types.unknown_consent.map((c) => html`<option value=${c}>${c}</option>`)}</select></div>
    </div>
    <h4>${form.type} settings</h4>
    <div class="fields" id="dest-config">${(type?.settings || []).map(cfgInput)}</div>
    ${NO_MAPPING.has(form.type) ? null : html`<h4>Field mapping</h4>
      <p class="small muted">Traits sent with each record, under the name the receiver expects; traits not listed are not sent.</p>
      <div id="dest-fields">${form.fields.map((f, i) => html`<div class="row" style=${{ marginBottom: ".3rem" }}>
        <label for=${`dest-trait-${i}`}>Trait</label><input id=${`dest-trait-${i}`} value=${f.trait} onInput=${(e) => setField(i, "trait", e.target.value)} />
        <label for=${`dest-out-${i}`}>sent as</label><input id=${`dest-out-${i}`} value=${f.out} placeholder=${f.trait} onInput=${(e) => setField(i, "out", e.target.value)} />
        <button type="button" class="btn small" aria-label=${`Remove the mapping of ${f.trait || "this trait"}`} onClick=${() => set("fields", form.fields.filter((_, j) => j !== i))}>Remove</button></div>`)}</div>
      <button type="button" class="btn small" onClick=${() => set("fields", [...form.fields, { trait: "", out: "" }])}>+ field</button>`}
    <div class="row" style=${{ marginTop: ".8rem" }}>
      <button class="btn primary" type="submit">${editing ? "Save destination" : "Add destination"}</button>
      ${onCancel ? html`<button class="btn" type="button" onClick=${onCancel}>Cancel</button>` : null}
    </div>
    ${secret ? html`<div class="warn-box" role="status" style=${{ marginTop: ".6rem" }}>Signing secret (shown once): <code>${secret}</code></div>` : null}
    <${ErrorBox} error=${error} />
  </form>`;
}

/** One destination's delivery log: its syncs with their counts, its dead letters
 * with replay (one or all), and a sync on demand. */
function DestinationLog({ dest, onChange }) {
  const state = useAsync(() => Promise.all([api(`/v1/destinations/${enc(dest.id)}/syncs`), api(`/v1/destinations/${enc(dest.id)}/deliveries${qs({ status: "dead", limit: 200 })}`)]), [dest.id, dest.deliveries?.dead, dest.syncs?.[0]?.status]);
  const [error, setError] = useState(null);
  const busy = state.data?.[0].syncs.some((x) => x.status === "requested" || x.status === "running");
  useEffect(() => { // follow a sync until it is done
    if (!busy) return undefined;
    const t = setTimeout(() => { state.reload(); onChange(); }, 1000);
    return () => clearTimeout(t);
  }, [busy, state.data]);
  const replay = async (ids) => {
    try { const r = await api(`/v1/destinations/${enc(dest.id)}/replay`, { method: "POST", body: ids ? { ids } : {} }); toast(`${num(r.replayed)} deliveries queued again`); state.reload(); onChange(); } catch (x) { setError(x); }
  };
  const sync = async () => {
    try { await api(`/v1/destinations/${enc(dest.id)}/sync`, { method: "POST" }); toast(`Full sync of ${dest.name} requested`); state.reload(); onChange(); } catch (x) { setError(x); }
  };
  return html`<div class="dest-log" id=${`log-${dest.id}`}>
    <div class="row"><h3>${dest.name}: delivery log</h3><button class="btn small" onClick=${sync}>Sync now</button></div>
    <${Async} state=${state}>${([syncs, dead]) => html`
      <h4>Full syncs</h4>
      ${syncs.syncs.length ? html`<div class="table-wrap" tabindex="0"><table class="dest-syncs"><caption class="small muted">The latest full syncs, newest first</caption>
        <thead><tr><th scope="col">Sync</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col">Requested</th><th scope="col" class="num">Members</th><th scope="col" class="num">Held out</th><th scope="col" class="num">Not consented</th><th scope="col" class="num">Sent</th><th scope="col">Error</th></tr></thead>
        <tbody>${syncs.syncs.map((x) => html`<tr><td>#${x.id}</td><td>${x.trigger}</td><td><span class="pill ${x.status === "failed" ? "bad" : x.status === "done" ? "good" : ""}">${x.status}</span></td>
          <td>${dateTime(x.requested_at)}</td><td class="num">${num(x.members)}</td><td class="num">${num(x.held_out)}</td><td class="num">${num((x.detail || []).reduce((a, d) => a + (d.not_consented || 0), 0))}</td><td class="num">${num(x.sent)}</td><td class="small">${x.error || "–"}</td></tr>`)}</tbody></table></div>`
        : html`<p class="muted small">No full sync yet.</p>`}
      <div class="row"><h4>Dead letters</h4>${dead.deliveries.length ? html`<button class="btn small" onClick=${() => replay(null)}>Replay all</button>` : null}</div>
      ${dead.deliveries.length ? html`<div class="table-wrap" tabindex="0"><table class="dest-dead"><thead><tr><th scope="col">Change</th><th scope="col">Segment</th><th scope="col" class="num">Attempts</th><th scope="col">Last error</th><th scope="col"></th></tr></thead>
        <tbody>${dead.deliveries.map((x) => html`<tr><td>${x.body.type} <span class="mono small">${x.body.profile_id}</span></td><td>${x.body.segment_id}</td><td class="num">${num(x.attempts)}</td>
          <td class="small">${x.last_error || "–"}</td><td class="right"><button class="btn small" aria-label=${`Replay delivery ${x.id}`} onClick=${() => replay([x.id])}>Replay</button></td></tr>`)}</tbody></table></div>`
        : html`<p class="muted small">No failed deliveries. ✓</p>`}`}</${Async}>
    <${ErrorBox} error=${error} />
  </div>`;
}

function Destinations() {
  const meta = useAsync(() => Promise.all([api("/v1/destinations/types"), api("/v1/segments"), optional("/v1/groups")]), []);
  const state = useAsync(() => api("/v1/destinations"), []);
  const [mode, setMode] = useState(null); // null | "new" | a destination being edited
  const [open, setOpen] = useState(null);
  const [error, setError] = useState(null);
  const remove = async (d) => {
    if (!confirm(`Delete ${d.name}? Its pending deliveries go to the dead letters.`)) return;
    try { await api(`/v1/destinations/${enc(d.id)}`, { method: "DELETE" }); toast(`Deleted ${d.name}`); if (open === d.id) setOpen(null); state.reload(); } catch (x) { setError(x); }
  };
  const saved = () => { setMode(null); state.reload(); };
  return html`<${Card} title="Destinations" id="destinations" actions=${mode ? null : html`<button class="btn primary" onClick=${() => setMode("new")}>+ New destination</button>`}>
    <p class="small muted">Webhooks, Redis streams, NATS subjects, file drops, ad audiences and email lists receive their segments' entries and exits as they happen and full syncs; failed deliveries are retried with backoff, then go to the dead letters.</p>
    <${Async} state=${state}>${(list) => {
      const shown = list.destinations.find((d) => d.id === open);
      return html`${list.destinations.length ? html`<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Channel</th><th scope="col">Receives</th><th scope="col">Status</th><th scope="col">Deliveries</th><th scope="col">Last sync</th><th scope="col"></th></tr></thead>
        <tbody>${list.destinations.map((d) => { const c = d.deliveries || { pending: 0, delivered: 0, dead: 0 }; const last = d.syncs?.[0]; return html`<tr data-destination=${d.id}>
          <td>${d.name}${d.name !== d.id ? html`<div class="small muted mono">${d.id}</div>` : null}</td><td><span class="pill">${d.type}</span></td>
          <td>${d.channel ? html`${d.channel}<div class="small muted">unknown: ${d.unknown_consent || "server default"}</div>` : html`<span class="muted">–</span>`}</td>
          <td>${d.segments.map((s) => html`<a class="tag" href=${segHref(s)}>${s}</a>`)}${(d.groups || []).map((g) => html`<a class="tag" href=${`#/groups/${enc(g)}`}>group ${g}</a>`)}</td>
          <td class="dest-status"><span class="pill ${STATUS_TONE[d.status] || ""}">${d.status || "–"}</span>${d.last_error ? html`<div class="small muted">last error: ${d.last_error}</div>` : null}</td>
          <td class="dest-counts"><span class="pill good">${num(c.delivered)} delivered</span> <span class="pill">${num(c.pending)} pending</span> ${c.dead ? html`<span class="pill bad">${num(c.dead)} dead</span>` : null}</td>
          <td class="small">${last ? html`${last.status} ${ago(last.requested_at)}<div class="muted">${num(last.sent)} of ${num(last.members)} sent</div>` : html`<span class="muted">none</span>`}</td>
          <td class="right"><div class="row" style=${{ justifyContent: "flex-end" }}>
            <button class="btn small" aria-expanded=${open === d.id ? "true" : "false"} aria-controls=${`log-${d.id}`} onClick=${() => setOpen(open === d.id ? null : d.id)}>Log</button>
            <button class="btn small" onClick=${() => setMode(d)}>Edit</button>
            <button class="btn small danger" onClick=${() => remove(d)}>Delete</button></div></td></tr>`; })}</tbody></table></div>`
        : html`<${Empty}>No destination yet.</${Empty}>`}
        ${shown ? html`<${DestinationLog} dest=${shown} onChange=${state.reload} />` : null}`;
    }}</${Async}>
    ${mode ? html`<${Async} state=${meta}>${(m) => html`<${DestinationForm} key=${mode === "new" ? "new" : mode.id} meta=${m} editing=${mode === "new" ? null : mode} onSaved=${saved} onCancel=${() => setMode(null)} />`}</${Async}>` : null}
    <${ErrorBox} error=${error} />
  </${Card}>`;
}

export default function Settings() {
  return html`<div class="page-head"><div><h1>Settings</h1><p class="sub">Keys, destinations and their deliveries.</p></div></div>
    <${Keys} /><${Destinations} />`;
}
