// The segment builder: details, the rule tree, a live size and sample as you type
// (debounced preview), the plain-English summary, the definition as YAML/JSON
// (editable: segments as code), a review step with the enter/exit diff and the cost
// estimate before saving, and for a saved segment its versions with a diff and restore.
import { html, useEffect, useMemo, useState } from "../lib/html.js";
import { api, optional, enc, ApiError } from "../lib/api.js";
import { num, pct, dateTime, ago, duration } from "../lib/format.js";
import { COMPUTED, editable, lineDiff, slug, summarize, yamlText } from "../lib/definition.js";
import { CatalogueLists, RuleTree } from "../lib/rules.js";
import { Async, Card, Dialog, ErrorBox, Loading, navigate, profileHref, toast, useAsync, useDebounced } from "../lib/ui.js";

const STANDARD_EVENTS = ["Product Viewed", "Product Added", "Product Removed", "Checkout Started", "Order Completed",
  "Products Searched", "Product Added to Wishlist", "Email Opened", "Email Link Clicked"];

/** The catalogue route, or one gathered from the saved definitions. */
async function loadCatalogue() {
  const [cat, list] = await Promise.all([optional("/v1/catalogue"), api("/v1/segments")]);
  const segments = list.segments.map((s) => ({ id: s.id, name: s.definition.name }));
  if (cat) return { ...cat, computed: cat.computed?.length ? cat.computed : COMPUTED, segments: cat.segments || segments, traits: cat.traits || [], events: cat.events || [] };
  const events = new Set(STANDARD_EVENTS), traits = new Set();
  const walk = (n) => {
    if (!n || typeof n !== "object") return;
    if (Array.isArray(n)) return n.forEach(walk);
    if (typeof n.event === "string") events.add(n.event);
    if (typeof n.trait === "string") traits.add(n.trait);
    Object.values(n).forEach(walk);
  };
  list.segments.forEach((s) => walk(s.definition.condition));
  return {
    events: [...events].sort().map((name) => ({ name, properties: [] })),
    traits: [...traits].sort().map((key) => ({ key, type: "string", examples: [] })),
    computed: COMPUTED, segments, pages: { count: 0, paths: [] }, fallback: true,
  };
}

const META = ["id", "name", "description", "purpose", "tags", "folder", "mode", "schedule", "emit_events", "protected", "public", "holdout", "snapshot_at", "members"];

function draftOf(meta, condition) {
  const d = {};
  for (const k of META) {
    const v = meta[k];
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length && k === "tags")) continue;
    d[k] = v;
  }
  if (d.mode === "realtime") delete d.mode;
  if (d.mode !== "scheduled") delete d.schedule;
  if (condition !== undefined && !(d.mode === "static" && d.members)) d.condition = condition;
  return d;
}

export default function Builder({ id, params }) {
  const editing = !!id;
  const source = id || params.from;
  const state = useAsync(async () => {
    const [cat, seg] = await Promise.all([loadCatalogue(), source ? api(`/v1/segments/${enc(source)}`) : null]);
    return { cat, seg };
  }, [source]);
  return html`<${Async} state=${state} label="Loading the catalogue">${({ cat, seg }) => {
    let def = seg ? editable(seg.definition) : { id: "", name: "", condition: { all: [] } };
    if (seg && !editing) def = { ...def, id: `${seg.id}_copy`, name: `Copy of ${def.name || seg.id}`, protected: undefined };
    return html`<${Editor} cat=${cat} initial=${def} editing=${editing} version=${seg?.version} key=${source || "new"} />`;
  }}</${Async}>`;
}

function Editor({ cat, initial, editing, version }) {
  const [meta, setMeta] = useState(() => { const { condition, ...m } = initial; return { ...m, tags: m.tags || [] }; });
  const [condition, setCondition] = useState(initial.condition ?? { all: [] });
  const [idTouched, setIdTouched] = useState(editing || !!initial.id);
  const [review, setReview] = useState(false);
  const draft = useMemo(() => draftOf(meta, condition), [meta, condition]);
  const key = JSON.stringify(draft);
  const debounced = useDebounced(key, 450);
  const [preview, setPreview] = useState({ loading: true });
  useEffect(() => {
    let live = true;
    const d = JSON.parse(debounced);
    if (!d.id) d.id = "draft_preview";
    setPreview((p) => ({ ...p, loading: true }));
    // validate first (always 200, every problem with its path), so a draft that does
    // not parse yet costs no evaluation and no failed request
    api("/v1/segments/validate", { method: "POST", body: d })
      .then((v) => (v.valid ? api("/v1/segments/preview", { method: "POST", body: d }) : Promise.reject(Object.assign(new ApiError(422, "invalid"), { errors: v.errors, warnings: v.warnings }))))
      .then((r) => live && setPreview({ size: r.size, sample: r.sample, warnings: r.warnings || [], errors: [], at: r.at }))
      .catch((e) => live && setPreview({ errors: e.errors?.length ? e.errors : [{ path: "", message: e.message }], warnings: e.warnings || [] }));
    return () => { live = false; };
  }, [debounced]);
  const problems = { errors: preview.errors || [], warnings: preview.warnings || [] };
  const fieldErr = (k) => problems.errors.filter((e) => e.path === k).map((e) => html`<span class="field-error small">${e.message}</span>`);
  const set = (k) => (e) => setMeta((m) => ({ ...m, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value }));
  const onName = (e) => {
    const name = e.target.value;
    setMeta((m) => ({ ...m, name, id: idTouched ? m.id : slug(name) }));
  };
  const treeErrors = problems.errors.filter((e) => e.path === "" || (!e.path.startsWith("condition") && !META.includes(e.path.split(/[.[]/)[0])));
  const everyone = cat.segments.find((s) => s.id === "everyone");
  return html`
    <${CatalogueLists} cat=${cat} />
    <div class="page-head">
      <div><p class="small"><a href=${editing ? `#/segments/${enc(meta.id)}` : "#/segments"}>← ${editing ? "Back to the segment" : "Segments"}</a></p>
        <h1>${editing ? `Edit “${meta.name || meta.id}”` : "New segment"}</h1>
        ${cat.fallback ? html`<p class="sub">Pickers list the events and traits your segments already use.</p>` : null}</div>
      <div class="actions builder-actions">
        <span class="live-pill" aria-hidden="true">${preview.size !== undefined ? html`<strong>${num(preview.size)}</strong> members${preview.loading ? "…" : ""}` : preview.loading ? "counting…" : "fix the rule"}</span>
        <button class="btn primary" id="review-save" onClick=${() => setReview(true)} disabled=${!meta.id}>Review & save</button>
      </div>
    </div>
    <div class="builder">
      <div>
        <${Card} title="Details" id="details">
          <div class="fields">
            <div class="field"><label for="seg-name">Name</label><input id="seg-name" value=${meta.name || ""} onInput=${onName} placeholder="e.g. Luxury watch lovers" />${fieldErr("name")}</div>
            <div class="field"><label for="seg-id">Id</label><input id="seg-id" class="mono" value=${meta.id} disabled=${editing} onInput=${(e) => { setIdTouched(true); set("id")(e); }} />${fieldErr("id")}</div>
            <div class="field"><label for="seg-mode">Updates</label>
              <select id="seg-mode" value=${meta.mode || "realtime"} onChange=${set("mode")}>
                <option value="realtime">in real time</option><option value="scheduled">on a schedule</option><option value="static">never (static snapshot)</option></select>${fieldErr("mode")}</div>
            ${meta.mode === "scheduled" ? html`<div class="field"><label for="seg-schedule">Schedule (cron, UTC)</label><input id="seg-schedule" class="mono" value=${meta.schedule || ""} placeholder="0 6 * * *" onInput=${set("schedule")} />${fieldErr("schedule")}</div>` : null}
          </div>
          <div class="fields" style=${{ marginTop: ".7rem" }}>
            <div class="field" style=${{ gridColumn: "1 / -1" }}><label for="seg-description">Description</label><input id="seg-description" value=${meta.description || ""} onInput=${set("description")} /></div>
            <div class="field"><label for="seg-tags">Tags (comma-separated)</label><input id="seg-tags" value=${(meta.tags || []).join(", ")} onChange=${(e) => setMeta((m) => ({ ...m, tags: e.target.value.split(",").map((x) => x.trim()).filter(Boolean) }))} />${fieldErr("tags")}</div>
            <div class="field"><label for="seg-folder">Folder</label><input id="seg-folder" value=${meta.folder || ""} onInput=${set("folder")} />${fieldErr("folder")}</div>
            <div class="field"><label for="seg-holdout">Holdout % (kept out of campaigns)</label><input id="seg-holdout" type="number" min="0" max="99" value=${meta.holdout?.percent ?? ""}
              onInput=${(e) => setMeta((m) => ({ ...m, holdout: e.target.value ? { ...(m.holdout || {}), percent: Number(e.target.value) } : undefined }))} />${problems.errors.filter((e) => e.path.startsWith("holdout")).map((e) => html`<span class="field-error small">${e.message}</span>`)}</div>
          </div>
        </${Card}>
        <${Card} title="Who is in it" id="rules">
          ${treeErrors.length ? html`<${ErrorBox} error=${{ message: "The definition has problems", errors: treeErrors }} />` : null}
          ${meta.mode === "static" && meta.members ? html`<p>${num(meta.members.length)} listed profiles (edit the list in the code view).</p>`
            : html`<${RuleTree} condition=${condition} onChange=${setCondition} problems=${problems} cat=${cat} />`}
        </${Card}>
        <${CodeCard} draft=${draft} onApply=${(doc) => { const { condition: c, version: _v, ...m } = doc; setMeta({ ...m, tags: m.tags || [], id: editing ? meta.id : m.id }); setCondition(c ?? { all: [] }); setIdTouched(true); }} />
        ${editing ? html`<${Versions} id=${meta.id} version=${version} />` : null}
      </div>
      <aside class="side" aria-label="Live preview">
        <${Card} title="Live size" id="preview">
          <div aria-live="polite">
            ${preview.size !== undefined ? html`<div class="size-live" id="preview-size">${num(preview.size)}</div>
              <p class="small muted">${everyone?.size || everyone?.size === 0 ? `${pct(preview.size / everyone.size)} of everyone · ` : ""}${preview.loading ? "updating…" : `as of ${dateTime(preview.at)}`}</p>`
              : preview.loading ? html`<${Loading} label="Counting" />` : html`<p class="error">Fix the highlighted rows to see the size.</p>`}
          </div>
          ${preview.sample?.length ? html`<h3>Sample members</h3><ul class="rank" id="preview-sample">${preview.sample.slice(0, 8).map((p) => html`<li><a href=${profileHref(p)} target="_blank" rel="noopener">${p}</a></li>`)}</ul>` : null}
        </${Card}>
        <${Card} title="In plain English" id="summary">
          <p class="summary-text" id="summary-text">${summarize(condition)}</p>
        </${Card}>
      </aside>
    </div>
    <${Review} open=${review} onClose=${() => setReview(false)} draft=${draft} editing=${editing} previewSize=${preview.size} />`;
}

function CodeCard({ draft, onApply }) {
  const [as, setAs] = useState("yaml");
  const [text, setText] = useState(null);
  const [error, setError] = useState(null);
  const shown = text ?? (as === "yaml" ? yamlText(draft) : JSON.stringify(draft, null, 2));
  const apply = async () => {
    setError(null);
    try {
      let doc;
      if (as === "json") doc = JSON.parse(shown);
      else {
        const r = await api("/v1/segments/validate", { method: "POST", body: shown, yaml: true });
        if (!r.canonical) throw new ApiError(422, "The YAML is not a valid definition", r.errors);
        doc = r.canonical;
      }
      onApply(doc);
      setText(null);
      toast("Applied the code to the builder");
    } catch (e) { setError(e); }
  };
  return html`<${Card} title="Code" id="code" actions=${html`<div class="tabs" role="tablist" style=${{ margin: 0, border: 0 }}>
      <button role="tab" aria-selected=${as === "yaml"} onClick=${() => { setAs("yaml"); setText(null); }}>YAML</button>
      <button role="tab" aria-selected=${as === "json"} onClick=${() => { setAs("json"); setText(null); }}>JSON</button></div>`}>
    <p class="small muted">The same definition as <code>segflow segments apply</code> reads. Edit it here and apply, or copy it into your repository.</p>
    <label class="sr-only" for="code-text">Definition as ${as.toUpperCase()}</label>
    <textarea id="code-text" class="code" spellcheck="false" value=${shown} onInput=${(e) => setText(e.target.value)}></textarea>
    <div class="row" style=${{ marginTop: ".5rem" }}>
      <button class="btn" id="apply-code" disabled=${text === null} onClick=${apply}>Apply to the builder</button>
      ${text !== null ? html`<button class="btn" onClick=${() => { setText(null); setError(null); }}>Discard edits</button>` : null}
    </div>
    <${ErrorBox} error=${error} />
  </${Card}>`;
}

function Review({ open, onClose, draft, editing, previewSize }) {
  const [state, setState] = useState(null);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!open) return;
    setState(null); setError(null);
    const diff = editing ? api(`/v1/segments/${enc(draft.id)}?dry_run=true`, { method: "PUT", body: draft }) : Promise.resolve(null);
    const estimate = api("/v1/segments/estimate", { method: "POST", body: draft }).catch((e) => ({ error: e }));
    Promise.all([diff, estimate]).then(([d, est]) => setState({ diff: d?.diff, status: d?.status, estimate: est })).catch((e) => setError(e));
  }, [open]);
  const save = async () => {
    setSaving(true); setError(null);
    try {
      const r = editing ? await api(`/v1/segments/${enc(draft.id)}`, { method: "PUT", body: draft }) : await api("/v1/segments", { method: "POST", body: draft });
      toast(`Saved “${draft.name || draft.id}” (version ${r.segment.version}, ${num(r.segment.size)} members)`);
      onClose();
      navigate(`#/segments/${enc(draft.id)}`);
    } catch (e) { setError(e); }
    setSaving(false);
  };
  const est = state?.estimate;
  const diff = state?.diff;
  return html`<${Dialog} title="Review before saving" open=${open} onClose=${onClose} actions=${html`
      <button class="btn" onClick=${onClose}>Keep editing</button>
      <button class="btn primary" id="confirm-save" onClick=${save} disabled=${saving || !state}>${saving ? "Saving…" : editing ? "Save new version" : "Create segment"}</button>`}>
    ${!state && !error ? html`<${Loading} label="Working out what changes" />` : null}
    ${state ? html`<div id="review">
      <h3>Membership</h3>
      ${diff ? html`<p>From <strong>${num(diff.size_before)}</strong> to <strong>${num(diff.size_after)}</strong> members:
          <span class="in">${num(diff.entering.length)} enter</span>, <span class="out">${num(diff.leaving.length)} exit</span>.</p>
          ${diff.entering.length ? html`<p class="small">Entering: ${diff.entering.slice(0, 8).join(", ")}${diff.entering.length > 8 ? "…" : ""}</p>` : null}
          ${diff.leaving.length ? html`<p class="small">Leaving: ${diff.leaving.slice(0, 8).join(", ")}${diff.leaving.length > 8 ? "…" : ""}</p>` : null}
          ${state.status === "unchanged" ? html`<p class="muted">Nothing changed since the saved version.</p>` : null}`
        : html`<p><span class="in">${num(est?.size ?? previewSize)} profiles enter</span> when it is created${est?.share !== undefined ? ` (${pct(est.share)} of ${num(est.profiles)})` : ""}.</p>`}
      <h3>Cost</h3>
      ${est && !est.error ? html`<ul class="small">
          <li>${num(est.features.length)} feature${est.features.length === 1 ? "" : "s"}: ${num(est.features.filter((f) => !f.new).length)} already computed for other segments, ${num(est.features.filter((f) => f.new).length)} new.</li>
          ${est.events.map((e) => html`<li>New features scan ${num(e.events)} stored ${e.names.join(", ")} events.</li>`)}
          ${est.traits.map((t) => html`<li>New features read ${num(t.rows)} writes of trait ${t.key}.</li>`)}
          <li>Adds about ${duration(est.timing.added_seconds * 1000)} to a full evaluation (${duration(est.timing.library_seconds * 1000)} today).</li>
        </ul>` : html`<p class="muted small">No estimate: ${est?.error?.message || "unavailable"}</p>`}
    </div>` : null}
    <${ErrorBox} error=${error} />
  </${Dialog}>`;
}

function Versions({ id, version }) {
  const state = useAsync(() => optional(`/v1/segments/${enc(id)}/versions`, { route: "/v1/segments/{}/versions" }), [id, version]);
  const [pick, setPick] = useState(null);
  const [error, setError] = useState(null);
  if (state.data === null) return null;
  const restore = async (v) => {
    try {
      await api(`/v1/segments/${enc(id)}/versions/${v}/restore`, { method: "POST" });
      toast(`Restored version ${v} as a new version`);
      navigate(`#/segments/${enc(id)}`);
    } catch (e) { setError(e); }
  };
  return html`<${Card} title="Versions" id="versions">
    <${Async} state=${state}>${(d) => html`
      <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Version</th><th scope="col">Saved</th><th scope="col"></th></tr></thead>
      <tbody>${d.versions.map((v) => html`<tr>
        <td>v${v.version}${v.version === version ? html` <span class="pill good">current</span>` : null}</td>
        <td title=${dateTime(v.saved_at)}>${ago(v.saved_at)}</td>
        <td class="right"><button class="btn small" aria-pressed=${pick?.version === v.version} onClick=${() => setPick(pick?.version === v.version ? null : v)}>${v.version === d.versions[0].version ? "Changes in it" : "Compare with current"}</button>
          ${v.version !== version ? html` <button class="btn small" onClick=${() => restore(v.version)}>Restore</button>` : null}</td>
      </tr>`)}</tbody></table></div>
      ${pick ? (() => {
        // the newest version against the one before it; any other against the newest
        const newest = d.versions[0];
        const [from, to] = pick.version === newest.version ? [d.versions[1], newest] : [pick, newest];
        if (!from) return html`<p class="muted">The first version: nothing to compare with.</p>`;
        return html`<h3>v${from.version} → v${to.version}</h3>
        <pre class="diff" aria-label="Differences">${lineDiff(yamlText(editable(from.definition)), yamlText(editable(to.definition))).map(([k, l]) =>
          html`<span class=${k === "+" ? "add" : k === "-" ? "del" : "same"}>${k} ${l}</span>`)}</pre>`;
      })() : null}
      <${ErrorBox} error=${error} />`}</${Async}>
  </${Card}>`;
}
