// The rule editor: a condition tree as nested AND/OR groups of rule rows, each row
// one condition kind (event with property filters, trait, computed trait, page,
// abandonment, sequence, in-segment, bucket), with NOT on rows and groups. Pickers
// come from the store's catalogue; each row shows its plain-English summary and the
// validation errors and warnings whose JSON path falls inside it.
import { html, useState } from "./html.js";
import { COMPARISONS, KINDS, OPS_BY_TYPE, OP_LABEL, kindOf, newNode, opOf, summarize, withOp } from "./definition.js";

let uid = 0;
const nextId = () => `r${++uid}`;

/** Errors and warnings at `path` (exact: groups) or inside it (rows). */
function claim(list, path, inside) {
  return (list || []).filter((e) => e.path === path || (inside && (e.path.startsWith(path + ".") || e.path.startsWith(path + "["))));
}

function Problems({ errors, warnings }) {
  return html`
    ${errors.length ? html`<ul class="rule-errors" role="alert">${errors.map((e) => html`<li>${e.message}</li>`)}</ul>` : null}
    ${warnings.length ? html`<ul class="rule-warnings">${warnings.map((w) => html`<li>${w.message}${w.suggestions?.length ? ` (did you mean ${w.suggestions.join(", ")}?)` : ""}</li>`)}</ul>` : null}`;
}

// ------------------------------------------------------------------ inputs

const UNITS = [["m", "minutes"], ["h", "hours"], ["d", "days"], ["w", "weeks"]];

export function DurationInput({ value, onChange, label }) {
  // an emptied number keeps its unit ("h"), so typing a new number keeps hours
  const m = /^(\d*(?:\.\d+)?)([smhdw])$/.exec(String(value ?? ""));
  const n = m ? m[1] : "", u = m ? m[2] : "d";
  return html`<span class="row" style=${{ gap: ".25rem", flexWrap: "nowrap" }}>
    <input type="number" min="1" step="1" aria-label=${`${label}: number`} value=${n} onInput=${(e) => onChange(`${e.target.value}${u}`)} />
    <select aria-label=${`${label}: unit`} value=${u} onChange=${(e) => onChange(`${n || 1}${e.target.value}`)}>
      ${UNITS.map(([k, l]) => html`<option value=${k}>${l}</option>`)}${u === "s" ? html`<option value="s">seconds</option>` : null}
    </select></span>`;
}

const toLocal = (iso) => (iso ? String(iso).replace(/Z$/, "").slice(0, 16) : "");
const fromLocal = (v) => (v ? `${v}:00Z` : "");

/** A window: ever, in the last D, between D1 and D2 ago, since a date, between dates. */
export function WindowInput({ value, onChange, allowEver = true }) {
  const kind = value === undefined || value === null ? "ever" : typeof value === "string" ? "last"
    : value.from_ago !== undefined ? "ago" : value.since ? "since" : "dates";
  const set = (k) => onChange(k === "ever" ? undefined : k === "last" ? "30d" : k === "ago" ? { from_ago: "90d", to_ago: "30d" }
    : k === "since" ? { since: new Date(Date.now() - 30 * 864e5).toISOString().slice(0, 10) + "T00:00:00Z" }
      : { from: new Date(Date.now() - 30 * 864e5).toISOString().slice(0, 10) + "T00:00:00Z", to: new Date().toISOString().slice(0, 10) + "T00:00:00Z" });
  return html`<span class="row" style=${{ gap: ".3rem" }}>
    <select aria-label="When" value=${kind} onChange=${(e) => set(e.target.value)}>
      ${allowEver ? html`<option value="ever">ever</option>` : null}
      <option value="last">in the last</option><option value="ago">between … ago</option>
      <option value="since">since</option><option value="dates">between dates</option>
    </select>
    ${kind === "last" ? html`<${DurationInput} label="Window" value=${value} onChange=${onChange} />` : null}
    ${kind === "ago" ? html`<${DurationInput} label="From (ago)" value=${value.from_ago} onChange=${(v) => onChange({ ...value, from_ago: v })} />
      <span class="word">and</span><${DurationInput} label="To (ago)" value=${value.to_ago} onChange=${(v) => onChange({ ...value, to_ago: v })} /><span class="word">ago</span>` : null}
    ${kind === "since" ? html`<input type="datetime-local" aria-label="Since" value=${toLocal(value.since)} onInput=${(e) => onChange({ since: fromLocal(e.target.value) })} />` : null}
    ${kind === "dates" ? html`<input type="datetime-local" aria-label="From" value=${toLocal(value.from)} onInput=${(e) => onChange({ ...value, from: fromLocal(e.target.value) })} />
      <span class="word">to</span><input type="datetime-local" aria-label="To" value=${toLocal(value.to)} onInput=${(e) => onChange({ ...value, to: fromLocal(e.target.value) })} />` : null}
  </span>`;
}

function parseScalar(text, type) {
  if (type === "number") { const n = Number(text); return text.trim() === "" || Number.isNaN(n) ? text : n; }
  if (type === "boolean") return text === "true" ? true : text === "false" ? false : text;
  return text;
}

/** The comparison of a node: operator and value, shaped by the value's type. */
export function Comparison({ node, type = "string", onChange, examples = [], label = "Value", ops }) {
  const op = opOf(node);
  const allowed = ops || OPS_BY_TYPE[type] || OPS_BY_TYPE.string;
  const choices = op && !allowed.includes(op) ? [op, ...allowed] : allowed;
  const v = op ? node[op] : undefined;
  const listId = examples.length ? `dl-${nextId()}` : undefined;
  const setOp = (o) => {
    const keep = ["exists", "not_exists"].includes(o) ? true
      : o === "between" ? [0, 100] : ["in", "not_in"].includes(o) ? (Array.isArray(v) ? v : v !== undefined && v !== true ? [v] : [])
        : ["within_last", "older_than"].includes(o) ? "30d" : ["before", "after"].includes(o) ? new Date().toISOString().slice(0, 10) + "T00:00:00Z"
          : Array.isArray(v) ? v[0] : typeof v === "boolean" && type !== "boolean" ? "" : v ?? "";
    onChange(withOp(node, o, keep));
  };
  let input = null;
  if (op === "between") {
    input = html`<input type="number" aria-label=${`${label}: from`} value=${v?.[0]} onInput=${(e) => onChange(withOp(node, op, [Number(e.target.value), v?.[1]]))} />
      <span class="word">and</span><input type="number" aria-label=${`${label}: to`} value=${v?.[1]} onInput=${(e) => onChange(withOp(node, op, [v?.[0], Number(e.target.value)]))} />`;
  } else if (op === "in" || op === "not_in") {
    input = html`<input class="wide" aria-label=${`${label} (comma-separated)`} placeholder="a, b, c" list=${listId} value=${(v || []).join(", ")}
      onChange=${(e) => onChange(withOp(node, op, e.target.value.split(",").map((x) => x.trim()).filter(Boolean).map((x) => parseScalar(x, type))))} />`;
  } else if (op === "exists" || op === "not_exists") {
    input = null;
  } else if (op === "within_last" || op === "older_than") {
    input = html`<${DurationInput} label=${label} value=${v} onChange=${(x) => onChange(withOp(node, op, x))} />`;
  } else if (op === "before" || op === "after") {
    input = html`<input type="datetime-local" aria-label=${label} value=${toLocal(v)} onInput=${(e) => onChange(withOp(node, op, fromLocal(e.target.value)))} />`;
  } else if (type === "boolean") {
    input = html`<select aria-label=${label} value=${String(v)} onChange=${(e) => onChange(withOp(node, op, e.target.value === "true"))}><option value="true">true</option><option value="false">false</option></select>`;
  } else if (type === "number") {
    input = html`<input type="number" step="any" aria-label=${label} value=${v ?? ""} onInput=${(e) => onChange(withOp(node, op, parseScalar(e.target.value, "number")))} />`;
  } else if (op) {
    input = html`<input aria-label=${label} list=${listId} value=${v ?? ""} onInput=${(e) => onChange(withOp(node, op, e.target.value))} />`;
  }
  return html`<select aria-label="Comparison" value=${op || ""} onChange=${(e) => setOp(e.target.value)}>
      ${choices.map((o) => html`<option value=${o}>${OP_LABEL[o]}</option>`)}
    </select>${input}
    ${listId ? html`<datalist id=${listId}>${examples.map((x) => html`<option value=${String(x)} />`)}</datalist>` : null}`;
}

// ------------------------------------------------------------------ catalogue helpers

const eventInfo = (cat, name) => cat.events.find((e) => e.name === name);
function propInfo(cat, event, path) {
  const p = String(path || "");
  return eventInfo(cat, event)?.properties?.find((x) => x.path === p || x.path === `properties.${p}` || `properties.${x.path}` === p);
}
function Datalist({ id, items }) {
  return html`<datalist id=${id}>${items.map(([v, l]) => html`<option value=${v} label=${l} />`)}</datalist>`;
}
const examplesText = (xs) => (xs?.length ? ` · e.g. ${xs.slice(0, 3).map(String).join(", ")}` : "");
const propPath = (p) => String(p || "").replace(/^properties\./, "");

// ------------------------------------------------------------------ rows

function EventPicker({ node, onChange, cat, pageKind }) {
  if (pageKind) {
    const key = "screen" in node ? "screen" : "page";
    const any = node[key] === true;
    const pages = cat.pages?.paths || [];
    return html`<select aria-label="Call type" value=${key} onChange=${(e) => { const { [key]: v, ...rest } = node; onChange({ [e.target.value]: v, ...rest }); }}>
        <option value="page">page</option><option value="screen">screen</option></select>
      <label class="row" style=${{ gap: ".25rem" }}><input type="checkbox" checked=${any} onChange=${(e) => onChange({ ...node, [key]: e.target.checked ? true : "" })} /> any</label>
      ${any ? null : html`<input aria-label="Page name" list="dl-pages" placeholder="page name" value=${node[key]} onInput=${(e) => onChange({ ...node, [key]: e.target.value })} />`}
      ${pages.length ? html`<span class="muted small">paths seen: ${pages.slice(0, 3).join(", ")}</span>` : null}`;
  }
  const names = Array.isArray(node.event) ? node.event.join(", ") : node.event || "";
  return html`<input class="wide" aria-label="Event name" list="dl-events" placeholder="event, e.g. Product Viewed" value=${names}
    onInput=${(e) => { const v = e.target.value; onChange({ ...node, event: v.includes(",") ? v.split(",").map((x) => x.trim()).filter(Boolean) : v }); }} />`;
}

function Filters({ node, onChange, cat }) {
  const where = node.where || [];
  const event = Array.isArray(node.event) ? node.event[0] : node.event;
  const props = eventInfo(cat, event)?.properties || [];
  const listId = `dl-props-${String(event || "any").replace(/[^A-Za-z0-9]/g, "_")}`;
  const set = (i, p) => { const w = where.slice(); if (p) w[i] = p; else w.splice(i, 1); onChange({ ...node, where: w.length ? w : undefined }); };
  return html`${where.map((p, i) => {
    const info = propInfo(cat, event, p.property);
    return html`<div class="rule-line">
      <span class="word">where</span>
      <input aria-label="Property" list=${listId} placeholder="property" value=${propPath(p.property)} onInput=${(e) => set(i, { ...p, property: e.target.value })} />
      <${Comparison} node=${p} type=${info?.type || "string"} examples=${info?.examples || []} label="Property value" onChange=${(x) => set(i, x)} />
      <button class="icon-btn" aria-label="Remove property filter" title="Remove filter" onClick=${() => set(i, null)}>✕</button>
    </div>`;
  })}
  <${Datalist} id=${listId} items=${props.map((p) => [propPath(p.path), `${p.type}${examplesText(p.examples)}`])} />
  <button class="btn small" onClick=${() => onChange({ ...node, where: [...where, { property: props[0] ? propPath(props[0].path) : "", eq: "" }] })}>+ property filter</button>`;
}

const MEASURES = [["count", "number of times"], ["sum", "total of"], ["avg", "average of"], ["min", "smallest"], ["max", "largest"],
  ["distinct", "distinct values of"], ["top", "most frequent"], ["first_time", "first time"], ["last_time", "last time"]];

function Measure({ node, onChange, cat }) {
  const m = node.measure || "count";
  const event = Array.isArray(node.event) ? node.event[0] : node.event;
  const props = eventInfo(cat, event)?.properties || [];
  const needsOf = ["sum", "avg", "min", "max", "distinct", "top"].includes(m);
  const type = m === "first_time" || m === "last_time" ? "timestamp" : m === "top" ? "string" : "number";
  const numeric = props.filter((p) => p.type === "number");
  const setMeasure = (x) => {
    const base = { ...node, measure: x === "count" ? undefined : x };
    if (!["sum", "avg", "min", "max", "distinct", "top"].includes(x)) delete base.of;
    else if (!base.of) base.of = propPath((x === "distinct" || x === "top" ? props[0] : numeric[0] || props[0])?.path || "");
    const t = x === "first_time" || x === "last_time" ? "timestamp" : x === "top" ? "string" : "number";
    const op = opOf(base);
    onChange(OPS_BY_TYPE[t].includes(op) ? base : withOp(base, OPS_BY_TYPE[t][0], t === "timestamp" ? "30d" : t === "number" ? 1 : ""));
  };
  return html`<div class="rule-line">
    <span class="word">where the</span>
    <select aria-label="Measure" value=${m} onChange=${(e) => setMeasure(e.target.value)}>${MEASURES.map(([k, l]) => html`<option value=${k}>${l}</option>`)}</select>
    ${needsOf ? html`<input aria-label="Measured property" list=${`dl-props-${String(event || "any").replace(/[^A-Za-z0-9]/g, "_")}`} placeholder="property" value=${propPath(node.of)} onInput=${(e) => onChange({ ...node, of: e.target.value })} />` : null}
    <${Comparison} node=${node} type=${type} label="Measure value" onChange=${onChange} />
  </div>`;
}

function EventRow({ node, onChange, cat, pageKind }) {
  const m = node.measure || "count";
  const op = opOf(node);
  const simple = m === "count" && (!op || (op === "gte" && node.gte === 1));
  const [advanced, setAdvanced] = useState(!simple);
  return html`
    <div class="rule-line">
      <${EventPicker} node=${node} onChange=${onChange} cat=${cat} pageKind=${pageKind} />
      <${WindowInput} value=${node.within} onChange=${(w) => onChange({ ...node, within: w })} />
    </div>
    <div class="rule-line"><${Filters} node=${node} onChange=${onChange} cat=${cat} />
      ${advanced ? null : html`<button class="btn small" onClick=${() => setAdvanced(true)}>+ count / amount</button>`}</div>
    ${advanced ? html`<${Measure} node=${node} onChange=${onChange} cat=${cat} />` : null}`;
}

function TraitRow({ node, onChange, cat, computed }) {
  const key = computed ? "computed" : "trait";
  const info = computed ? cat.computed.find((c) => c.name === node.computed) : cat.traits.find((t) => t.key === node.trait);
  const type = info?.type || (typeof opOf(node) && typeof node[opOf(node)] === "number" ? "number" : "string");
  return html`<div class="rule-line">
    ${computed
      ? html`<select aria-label="Computed trait" value=${node.computed} onChange=${(e) => onChange({ ...node, computed: e.target.value })}>
          ${cat.computed.map((c) => html`<option value=${c.name}>${c.name} – ${c.description}</option>`)}</select>`
      : html`<input aria-label="Trait" list="dl-traits" placeholder="trait, e.g. country" value=${node[key]} onInput=${(e) => onChange({ ...node, trait: e.target.value })} />`}
    <${Comparison} node=${node} type=${type} examples=${info?.examples || []} label="Trait value" onChange=${onChange} />
  </div>`;
}

function AbandonRow({ node, onChange, cat }) {
  const nf = typeof node.not_followed_by === "object" && !Array.isArray(node.not_followed_by) ? node.not_followed_by.event : node.not_followed_by;
  return html`<div class="rule-line">
      <span class="word">did</span><${EventPicker} node=${node} onChange=${onChange} cat=${cat} />
      <${WindowInput} value=${node.within} onChange=${(w) => onChange({ ...node, within: w })} />
    </div>
    <div class="rule-line"><${Filters} node=${node} onChange=${onChange} cat=${cat} /></div>
    <div class="rule-line"><span class="word">and no</span>
      <input class="wide" aria-label="Not followed by event" list="dl-events" value=${nf || ""} onInput=${(e) => onChange({ ...node, not_followed_by: e.target.value })} />
      <span class="word">for at least</span><${DurationInput} label="Waiting time" value=${node.for} onChange=${(v) => onChange({ ...node, for: v })} /><span class="word">after it</span>
    </div>`;
}

function SequenceRow({ node, onChange, cat }) {
  const steps = node.sequence;
  const set = (i, s) => { const xs = steps.slice(); if (s) xs[i] = s; else xs.splice(i, 1); onChange({ ...node, sequence: xs }); };
  return html`${steps.map((s, i) => html`<div class="rule-line" style=${{ paddingLeft: ".4rem", borderLeft: "2px solid var(--line)" }}>
      <span class="word">${i === 0 ? "first" : "then"}</span>
      <${EventPicker} node=${s} onChange=${(x) => set(i, x)} cat=${cat} />
      ${steps.length > 2 ? html`<button class="icon-btn" aria-label=${`Remove step ${i + 1}`} onClick=${() => set(i, null)}>✕</button>` : null}
      <div style=${{ flexBasis: "100%" }}><${Filters} node=${s} onChange=${(x) => set(i, x)} cat=${cat} /></div>
    </div>`)}
    <div class="rule-line"><button class="btn small" onClick=${() => onChange({ ...node, sequence: [...steps, { event: "" }] })}>+ step</button>
      <${WindowInput} value=${node.within} onChange=${(w) => onChange({ ...node, within: w })} />
      <label class="row" style=${{ gap: ".3rem" }}><input type="checkbox" checked=${!!node.span} onChange=${(e) => onChange({ ...node, span: e.target.checked ? "1h" : undefined })} /> first to last within</label>
      ${node.span ? html`<${DurationInput} label="Span" value=${node.span} onChange=${(v) => onChange({ ...node, span: v })} />` : null}
    </div>`;
}

function SegmentRow({ node, onChange, cat }) {
  return html`<div class="rule-line"><span class="word">is a member of</span>
    <select aria-label="Segment" value=${node.in_segment} onChange=${(e) => onChange({ in_segment: e.target.value })}>
      <option value="">choose a segment…</option>
      ${cat.segments.map((s) => html`<option value=${s.id}>${s.name || s.id}</option>`)}
    </select></div>`;
}

function BucketRow({ node, onChange }) {
  const b = node.bucket;
  return html`<div class="rule-line"><span class="word">random bucket from</span>
    <input type="number" min="0" max="100" aria-label="Bucket from (%)" value=${b.from ?? 0} onInput=${(e) => onChange({ bucket: { ...b, from: Number(e.target.value) } })} />
    <span class="word">% to</span>
    <input type="number" min="0" max="100" aria-label="Bucket to (%)" value=${b.to} onInput=${(e) => onChange({ bucket: { ...b, to: Number(e.target.value) } })} />
    <span class="word">% of salt</span>
    <input aria-label="Salt" value=${b.salt} onInput=${(e) => onChange({ bucket: { ...b, salt: e.target.value } })} /></div>`;
}

const PageRow = (p) => html`<${EventRow} ...${p} pageKind=${true} />`;
const ComputedRow = (p) => html`<${TraitRow} ...${p} computed=${true} />`;
const ROWS = { event: EventRow, page: PageRow, trait: TraitRow, computed: ComputedRow,
  abandonment: AbandonRow, sequence: SequenceRow, in_segment: SegmentRow, bucket: BucketRow };
const KIND_LABEL = Object.fromEntries(KINDS);

function Row({ node, negated, onChange, onNegate, onRemove, onDuplicate, path, problems, cat }) {
  const kind = kindOf(node);
  const inner = negated ? `${path}.not` : path;
  const errors = claim(problems.errors, path, true);
  const warnings = claim(problems.warnings, path, true);
  const Body = ROWS[kind];
  return html`<div class="rule ${errors.length ? "has-error" : ""}" data-path=${inner} data-kind=${kind}>
    <div class="rule-line">
      <strong class="small">${KIND_LABEL[kind] || kind}</strong>
      <label class="row small" style=${{ gap: ".25rem" }}><input type="checkbox" checked=${negated} onChange=${onNegate} /> ${kind === "event" || kind === "page" ? "did NOT" : "NOT"}</label>
      <span class="rule-tools">
        <button class="icon-btn small" aria-label="Copy condition" title="Copy this condition" onClick=${onDuplicate}>Copy</button>
        <button class="icon-btn" aria-label="Remove condition" title="Remove" onClick=${onRemove}>✕</button>
      </span>
    </div>
    ${Body ? html`<${Body} node=${node} onChange=${onChange} cat=${cat} />` : html`<pre>${JSON.stringify(node)}</pre>`}
    <p class="rule-summary">${summarize(negated ? { not: node } : node)}</p>
    <${Problems} errors=${errors} warnings=${warnings} />
  </div>`;
}

/** One AND/OR group (optionally negated) of rows and nested groups. */
export function Group({ node, negated = false, onChange, onNegate, onRemove, path, problems, cat, root = false }) {
  const kind = "any" in node ? "any" : "all";
  const items = node[kind];
  const [addKind, setAddKind] = useState("event");
  const setItems = (xs) => onChange({ [kind]: xs });
  const setItem = (i, x) => { const xs = items.slice(); if (x === null) xs.splice(i, 1); else xs[i] = x; setItems(xs); };
  const ownPath = negated ? `${path}.not` : path;
  const errors = claim(problems.errors, ownPath, false).concat(claim(problems.errors, path, false));
  return html`<div class="group ${kind} ${negated ? "negated" : ""}" data-path=${ownPath} role="group" aria-label=${`${negated ? "NOT " : ""}${kind === "all" ? "all" : "any"} of the conditions`}>
    <div class="group-head">
      <label class="row" style=${{ gap: ".3rem" }}><span class="word">Match</span>
        <select aria-label="Match all or any" value=${kind} onChange=${(e) => onChange({ [e.target.value]: items })}>
          <option value="all">ALL of (AND)</option><option value="any">ANY of (OR)</option></select></label>
      ${root ? null : html`<label class="row small" style=${{ gap: ".25rem" }}><input type="checkbox" checked=${negated} onChange=${onNegate} /> NOT</label>
        <span class="rule-tools"><button class="icon-btn" aria-label="Remove group" onClick=${onRemove}>✕</button></span>`}
    </div>
    ${items.length ? null : html`<p class="muted small">${root ? "No conditions yet: add one below (an empty ALL matches everyone)." : "Empty group."}</p>`}
    ${items.map((item, i) => {
      const k = kindOf(item);
      const isNot = k === "not";
      const inner = isNot ? item.not : item;
      const ik = kindOf(inner);
      const p = `${path === "" ? "" : path + "."}${kind}[${i}]`.replace(/^\./, "");
      const prefix = ownPath ? `${ownPath}.${kind}[${i}]` : `${kind}[${i}]`;
      const wrap = (x) => (isNot ? { not: x } : x);
      const common = { path: prefix, problems, cat, negated: isNot,
        onChange: (x) => setItem(i, wrap(x)), onNegate: () => setItem(i, isNot ? inner : { not: inner }), onRemove: () => setItem(i, null) };
      return html`${i ? html`<div class="joiner" aria-hidden="true">${kind === "all" ? "and" : "or"}</div>` : null}
        ${ik === "all" || ik === "any" ? html`<${Group} node=${inner} ...${common} key=${p} />`
          : html`<${Row} node=${inner} ...${common} onDuplicate=${() => { const xs = items.slice(); xs.splice(i + 1, 0, structuredClone(item)); setItems(xs); }} key=${p} />`}`;
    })}
    ${errors.length ? html`<ul class="rule-errors" role="alert">${errors.map((e) => html`<li>${e.message}</li>`)}</ul>` : null}
    <div class="group-foot">
      <label class="sr-only" for=${`add-${ownPath || "root"}`}>Condition type</label>
      <select id=${`add-${ownPath || "root"}`} value=${addKind} onChange=${(e) => setAddKind(e.target.value)}>
        ${KINDS.map(([k, l]) => html`<option value=${k}>${l}</option>`)}</select>
      <button class="btn small add-condition" onClick=${() => setItems([...items, newNode(addKind)])}>+ Add condition</button>
      <button class="btn small" onClick=${() => setItems([...items, { [kind === "all" ? "any" : "all"]: [] }])}>+ Add ${kind === "all" ? "OR" : "AND"} group</button>
    </div>
  </div>`;
}

/** The whole tree: a root group (a single condition shows as a group of one). */
export function RuleTree({ condition, onChange, problems, cat }) {
  const k = kindOf(condition);
  if (k === "all" || k === "any") {
    return html`<${Group} root node=${condition} path="condition" onChange=${onChange} problems=${problems} cat=${cat} />`;
  }
  // a single condition (or a NOT of one) edits as a one-row ALL group; one row
  // left after editing is saved unwrapped, so the definition keeps its shape
  const virtual = { all: condition ? [condition] : [] };
  const sub = { errors: problems.errors.map((e) => ({ ...e, path: e.path.replace(/^condition/, "condition.all[0]") })),
    warnings: problems.warnings.map((e) => ({ ...e, path: e.path.replace(/^condition/, "condition.all[0]") })) };
  return html`<${Group} root node=${virtual} path="condition" problems=${sub} cat=${cat}
    onChange=${(x) => onChange("all" in x && x.all.length === 1 ? x.all[0] : x)} />`;
}

/** Datalists shared by every row: event names and trait keys with types and examples. */
export function CatalogueLists({ cat }) {
  return html`<${Datalist} id="dl-events" items=${cat.events.map((e) => [e.name, e.count !== undefined ? `${e.count.toLocaleString()} events` : ""])} />
    <${Datalist} id="dl-traits" items=${cat.traits.map((t) => [t.key, `${t.type}${examplesText(t.examples)}`])} />
    <${Datalist} id="dl-pages" items=${(cat.pages?.names || []).map((n) => [n, "page name"])} />`;
}

export { COMPARISONS };
