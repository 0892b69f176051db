// One customer: who they are, their scores explained in plain language, orders with
// products, cart and wishlist, the click-stream timeline, their segments with since
// dates and "Why?" (the explain tree), and the privacy export / delete.
import { html, useState } from "../lib/html.js";
import { api, optional, enc, qs, download } from "../lib/api.js";
import { num, money, pct, date, dateTime, ago, durationText } from "../lib/format.js";
import { compText } from "../lib/definition.js";
import { Async, Card, Dialog, Empty, ErrorBox, Tag, navigate, segHref, toast, useAsync } from "../lib/ui.js";

const SCORE_KEYS = new Set(["churn_risk", "clv_12m", "email_click_rate", "email_open_rate", "engagement_score", "expected_orders_30d",
  "expected_orders_90d", "lifecycle_stage", "loyalty_tier", "p_alive", "purchase_frequency_band", "rfm_code", "rfm_frequency",
  "rfm_group", "rfm_monetary", "rfm_recency", "scores_computed_at"]);

export function displayName(p) {
  const t = p.traits || {};
  return p.name || [t.first_name, t.last_name].filter(Boolean).join(" ") || t.name || p.email || t.email || p.profile_id;
}

const RFM_HELP = {
  Champions: "bought recently, buy often and spend the most",
  "Loyal Customers": "buy regularly and spend well",
  "Potential Loyalists": "recent customers with more than one order",
  "New Customers": "bought for the first time recently",
  Promising: "recent buyers who have not spent much yet",
  "Need Attention": "above average, but not bought for a while",
  "About To Sleep": "below average and fading",
  "At Risk": "spent well and often, but long ago",
  "Cannot Lose Them": "were among the best, now gone quiet",
  Hibernating: "last order long ago, few orders",
  Lost: "lowest recency, frequency and spend",
};

function Scores({ t }) {
  if (!Object.keys(t).some((k) => SCORE_KEYS.has(k) && k !== "scores_computed_at")) return null;
  const risk = t.churn_risk;
  const riskWord = risk === undefined ? null : risk >= 0.5 ? "high" : risk >= 0.2 ? "medium" : "low";
  const perDay = t.expected_orders_30d ? t.expected_orders_30d / 30 : null;
  const items = [
    t.rfm_group !== undefined && ["RFM group", t.rfm_group, `${RFM_HELP[t.rfm_group] || "a recency-frequency-monetary group"}${t.rfm_code ? ` (recency ${t.rfm_recency}, frequency ${t.rfm_frequency}, spend ${t.rfm_monetary} on a 1–5 scale)` : ""}.`],
    t.loyalty_tier !== undefined && ["Loyalty tier", t.loyalty_tier, "The tier their spend and orders put them in."],
    t.lifecycle_stage !== undefined && ["Lifecycle stage", String(t.lifecycle_stage).replace(/_/g, " "), "Where they are in their life as a customer."],
    t.clv_12m !== undefined && ["Predicted value, 12 months", money(t.clv_12m), "What they are expected to spend in the next 12 months (CLV model)."],
    risk !== undefined && ["Churn risk", html`${pct(risk)} <span class="pill ${riskWord === "high" ? "bad" : riskWord === "medium" ? "warn" : "good"}">${riskWord}</span>`,
      `The chance they have stopped buying${t.p_alive !== undefined ? `; ${pct(t.p_alive)} likely still active` : ""}.`],
    perDay && ["Next order", perDay >= 1 / 365 ? `in about ${durationText(`${Math.max(1, Math.round(1 / perDay))}d`)}` : "not expected soon",
      `${num(t.expected_orders_30d, 1)} orders expected in the next 30 days${t.expected_orders_90d !== undefined ? `, ${num(t.expected_orders_90d, 1)} in 90` : ""}.`],
    t.engagement_score !== undefined && ["Engagement", `${num(t.engagement_score)} / 100`, `From visits, email opens (${pct(t.email_open_rate)}) and clicks (${pct(t.email_click_rate)}).`],
  ].filter(Boolean);
  return html`<${Card} title="Scores" id="scores" actions=${t.scores_computed_at ? html`<span class="small muted">computed ${ago(t.scores_computed_at)}</span>` : null}>
    <div class="score-grid">${items.map(([label, v, help]) => html`<div class="score"><div class="small muted">${label}</div><div class="v">${v}</div><p>${help}</p></div>`)}</div>
  </${Card}>`;
}

const fmtValue = (k, v) => v === null || v === undefined ? "–"
  : typeof v === "boolean" ? (v ? "yes" : "no")
    : typeof v === "number" ? (/(ltv|value|aov|revenue|clv)/.test(k) ? money(v) : num(v, 2))
      : Array.isArray(v) ? v.join(", ") || "–"
        : typeof v === "object" ? JSON.stringify(v)
          : /(_at|_on)$/.test(k) && !Number.isNaN(Date.parse(v)) ? dateTime(v) : String(v);

function KV({ obj, id }) {
  const rows = Object.entries(obj).filter(([k]) => !SCORE_KEYS.has(k));
  return rows.length ? html`<table class="kv" id=${id}><tbody>${rows.map(([k, v]) => html`<tr><th scope="row">${k.replace(/_/g, " ")}</th><td>${fmtValue(k, v)}</td></tr>`)}</tbody></table>`
    : html`<${Empty}>Nothing yet.</${Empty}>`;
}

function Orders({ orders }) {
  if (!orders.length) return html`<${Empty}>No orders yet.</${Empty}>`;
  return html`<div class="table-wrap" tabindex="0"><table id="orders"><thead><tr><th scope="col">Date</th><th scope="col" class="hide-phone">Order</th><th scope="col">Products</th><th scope="col" class="num">Revenue</th></tr></thead>
    <tbody>${orders.map((o) => {
      const p = o.properties || {};
      const products = o.products || p.products || [];
      return html`<tr><td>${date(o.timestamp || o.at)}</td><td class="mono small hide-phone">${p.order_id || o.order_id || "–"}${p.coupon ? html` <span class="pill">${p.coupon}</span>` : null}</td>
        <td>${products.length ? products.map((x) => html`<div>${x.quantity && x.quantity !== 1 ? `${num(x.quantity)} × ` : ""}${x.name || x.product_id} <span class="muted small">${money(x.price, p.currency)}</span></div>`) : html`<span class="muted">${p.category || "–"}</span>`}</td>
        <td class="num">${money(p.revenue ?? o.revenue, p.currency || "USD")}</td></tr>`;
    })}</tbody></table></div>`;
}

function Items({ items, empty, id }) {
  if (!items.length) return html`<${Empty}>${empty}</${Empty}>`;
  return html`<ul class="rank" id=${id}>${items.map((x) => typeof x === "string" ? html`<li>${x}</li>` : html`<li>
    <span>${x.quantity && x.quantity !== 1 ? `${num(x.quantity)} × ` : ""}${x.name || x.product_id}${x.category ? html` <span class="muted small">${x.category}</span>` : null}</span>
    <span class="num">${money(x.price)}${x.added_at ? html` <span class="muted small">${ago(x.added_at)}</span>` : null}</span></li>`)}</ul>`;
}

const TYPES = ["", "track", "page", "identify", "screen", "alias"];

function Timeline({ id, recent }) {
  const [type, setType] = useState("");
  const [event, setEvent] = useState("");
  const [pages, setPages] = useState([]);
  const [before, setBefore] = useState(null);
  const state = useAsync(async () => {
    const r = await optional(`/v1/profiles/${enc(id)}/events${qs({ limit: 25, type, event, before })}`, { route: "/v1/profiles/{}/events" });
    if (r) return r;
    const events = recent.filter((e) => (!type || e.type === type) && (!event || e.event === event)).map((e) => ({ ...e, at: e.timestamp }));
    // the profile view's latest events, 25 at a time
    const start = before ? Number(before) : 0;
    return { events: events.slice(start, start + 25), next_before: start + 25 < events.length ? String(start + 25) : null, fallback: true };
  }, [id, type, event, before]);
  const names = [...new Set(recent.map((e) => e.event).filter(Boolean))].sort();
  const all = [...pages, ...(state.data?.events || [])];
  return html`<${Card} title="Activity" id="timeline" actions=${html`
      <label class="sr-only" for="tl-type">Call type</label>
      <select id="tl-type" value=${type} onChange=${(e) => { setPages([]); setBefore(null); setType(e.target.value); }}>${TYPES.map((t) => html`<option value=${t}>${t || "all types"}</option>`)}</select>
      <label class="sr-only" for="tl-event">Event</label>
      <input id="tl-event" list="tl-events" placeholder="event name" value=${event} onChange=${(e) => { setPages([]); setBefore(null); setEvent(e.target.value); }} />
      <datalist id="tl-events">${names.map((n) => html`<option value=${n} />`)}</datalist>`}>
    <${Async} state=${state}>${(d) => html`
      ${all.length ? html`<ol class="timeline">${all.map((e) => html`<li>
        <span class="small muted" title=${dateTime(e.at)}>${dateTime(e.at)}</span>
        <span><strong>${e.event || (e.type === "page" ? `Viewed ${e.properties?.name || e.properties?.path || "a page"}` : e.type)}</strong>
          <span class="pill">${e.type}</span>
          <div class="props">${Object.entries(e.properties || {}).filter(([, v]) => v !== null && typeof v !== "object").slice(0, 8).map(([k, v]) => `${k}: ${typeof v === "number" && /price|revenue|value/.test(k) ? money(v) : v}`).join(" · ")}</div></span>
      </li>`)}</ol>` : html`<${Empty}>No activity matches.</${Empty}>`}
      ${d.fallback ? html`<p class="small muted">The latest 50 events.</p>` : null}
      ${d.next_before ? html`<div class="pager"><button class="btn small" onClick=${() => { setPages(all); setBefore(d.next_before); }}>Load older</button></div>` : null}`}</${Async}>
  </${Card}>`;
}

function featureText(f) {
  if (f.kind === "trait") return `trait ${f.trait}`;
  const measure = f.measure && f.measure !== "count" ? `${f.measure}${f.of ? ` of ${String(f.of).replace(/^properties\./, "")}` : ""} of ` : "count of ";
  const win = f.within ? ` in the last ${durationText(f.within)}` : "";
  const where = (f.where || []).map((p) => ` where ${String(p.property).replace(/^properties\./, "")} ${compText(p)}`).join(" and");
  return `${measure}${f.event || (f.page !== undefined ? "page calls" : f.kind)}${where}${win}`;
}

/** The explain tree: each node's truth, with the value the profile has. */
export function ExplainNode({ n }) {
  const kids = (n.items || []).concat(n.item ? [n.item] : []);
  let label;
  if (n.op === "compare") {
    const v = n.feature.value;
    label = html`${featureText(n.feature)} ${compText(n.comparison)} <span class="val">(has ${v === null || v === undefined ? "nothing" : typeof v === "number" ? num(v, 2) : JSON.stringify(v)})</span>`;
  } else if (n.op === "in_segment") label = html`in segment <a href=${segHref(n.segment)}>${n.segment}</a>`;
  else label = n.op === "all" ? "all of" : n.op === "any" ? "any of" : n.op === "not" ? "not" : n.op;
  return html`<div class="node">
    <span class=${n.value ? "ok" : "ko"} aria-label=${n.value ? "true" : "false"}>${n.value ? "✔" : "✘"}</span> ${label}
    ${kids.map((k) => html`<${ExplainNode} n=${k} />`)}
  </div>`;
}

function Why({ segment, id }) {
  const state = useAsync(() => api(`/v1/segments/${enc(segment)}/explain${qs({ profile_id: id })}`), [segment, id]);
  return html`<div class="explain" id="explain"><${Async} state=${state}>${(r) => html`
    <p class="verdict"><strong>${r.member ? "Member" : "Not a member"}</strong> of ${segment} <span class="muted small">as of ${dateTime(r.at)}</span></p>
    <${ExplainNode} n=${r.condition} />
    ${r.destinations?.length ? html`<h4>Destinations</h4><ul class="reach">${r.destinations.map((d) => html`<li data-destination=${d.destination_id}>
      <span class=${d.excluded ? "ko" : "ok"} aria-label=${d.excluded ? "excluded" : "sent"}>${d.excluded ? "✘" : "✔"}</span> <strong>${d.name}</strong> <span class="small muted">(${d.type})</span>: ${d.reason}</li>`)}</ul>` : null}`}</${Async}></div>`;
}

const CONSENT_TONE = { granted: "good", denied: "bad", unknown: "" };

/** Consent per channel: the latest statement with its source and time, or unknown
 * with the default that applies in the customer's region. */
function Consent({ p }) {
  const rows = p.consent_channels || [];
  if (!rows.length) return null;
  return html`<${Card} title="Consent" id="consent">
    <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Channel</th><th scope="col">State</th><th scope="col">Source</th></tr></thead>
      <tbody>${rows.map((c) => html`<tr data-channel=${c.channel}><td>${c.channel}</td>
        <td><span class="pill ${CONSENT_TONE[c.state]}">${c.state}</span>${c.state === "unknown" ? html`<div class="small muted">default ${c.default}${c.region ? ` (${c.region})` : ""}</div>` : null}</td>
        <td class="small">${c.source ? html`${c.source}<div class="muted">${dateTime(c.at)}</div>` : html`<span class="muted">never stated</span>`}</td></tr>`)}</tbody></table></div>
  </${Card}>`;
}

function Segments({ p, all }) {
  const [open, setOpen] = useState(null);
  const [other, setOther] = useState("");
  const names = Object.fromEntries(all.map((s) => [s.id, s.definition.name || s.id]));
  const entries = Object.entries(p.segments).sort((a, b) => String(b[1]).localeCompare(String(a[1])));
  return html`<${Card} title="Segments" id="profile-segments-card">
    ${entries.length ? html`<ul class="rank" id="profile-segments">${entries.map(([s, since]) => html`<li>
      <span><a href=${segHref(s)}>${names[s] || s}</a><span class="small muted"> · since ${since ? date(since) : "–"}</span></span>
      <button class="btn small why" aria-expanded=${open === s} onClick=${() => setOpen(open === s ? null : s)}>Why?</button>
    </li>${open === s ? html`<li><${Why} segment=${s} id=${p.profile_id} /></li>` : null}`)}</ul>` : html`<${Empty}>In no segment.</${Empty}>`}
    <h3>Why not in another segment?</h3>
    <div class="row"><label class="sr-only" for="explain-segment">Segment</label>
      <select id="explain-segment" value=${other} onChange=${(e) => setOther(e.target.value)}>
        <option value="">choose a segment…</option>${all.map((s) => html`<option value=${s.id}>${names[s.id]}</option>`)}</select></div>
    ${other ? html`<${Why} segment=${other} id=${p.profile_id} key=${other} />` : null}
  </${Card}>`;
}

function Privacy({ p }) {
  const [confirm, setConfirm] = useState(false);
  const [suppress, setSuppress] = useState(true);
  const [error, setError] = useState(null);
  const remove = async () => {
    try {
      const r = await api(`/v1/profiles/${enc(p.profile_id)}${qs({ suppress: suppress ? "true" : "" })}`, { method: "DELETE" });
      toast(`Deleted ${r.deleted}; ${num(r.exits)} segment exits logged`);
      navigate("#/profiles");
    } catch (e) { setError(e); }
  };
  return html`<${Card} title="Privacy" id="privacy">
    <p class="small muted">Access requests get everything held on this customer; erasure removes every trace from the store.</p>
    <div class="row">
      <button class="btn" id="privacy-export" onClick=${() => download(`/v1/profiles/${enc(p.profile_id)}/export`, `${p.profile_id}.json`).then(() => toast("Export downloaded")).catch((e) => toast(e.message, "bad"))}>Export data (JSON)</button>
      <button class="btn danger" id="privacy-delete" onClick=${() => setConfirm(true)}>Delete customer…</button>
    </div>
    <${Dialog} title="Delete this customer?" open=${confirm} onClose=${() => setConfirm(false)} actions=${html`
      <button class="btn" onClick=${() => setConfirm(false)}>Cancel</button>
      <button class="btn danger solid" onClick=${remove}>Delete for good</button>`}>
      <p>Events, traits, identities and memberships of <strong>${displayName(p)}</strong> are erased; segment exits are logged under a pseudonym.</p>
      <label class="row"><input type="checkbox" checked=${suppress} onChange=${(e) => setSuppress(e.target.checked)} /> Also drop future events for these ids (suppress)</label>
      <${ErrorBox} error=${error} />
    </${Dialog}>
  </${Card}>`;
}

export default function Profile({ id }) {
  const state = useAsync(() => Promise.all([api(`/v1/profiles/${enc(id)}`), api("/v1/segments")]), [id]);
  const [q, setQ] = useState("");
  return html`
    <form class="row" role="search" style=${{ justifyContent: "flex-end", marginBottom: ".5rem" }} onSubmit=${(e) => { e.preventDefault(); navigate(`#/profiles?q=${enc(q)}`); }}>
      <label class="sr-only" for="profile-jump">Find another customer</label>
      <input id="profile-jump" type="search" placeholder="Find a customer by email, name or id" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <button class="btn" type="submit">Search</button>
    </form>
    <${Async} state=${state}>${([p, segs]) => {
      const t = p.traits || {};
      const email = p.email || t.email;
      const ct = p.computed_traits || {};
      return html`
      <div class="page-head">
        <div><p class="small"><a href="#/profiles">← Customers</a></p>
          <h1 id="profile-name">${displayName(p)}</h1>
          <p class="sub">${email && email !== displayName(p) ? html`<a href=${`mailto:${email}`}>${email}</a> · ` : null}<span class="mono small">${p.profile_id}</span></p>
          <div class="row small muted">First seen ${date(p.first_seen)} · last seen ${ago(p.last_seen)} ${p.identities.map((i) => html`<${Tag}>${i.kind}: ${i.value}</${Tag}>`)}</div></div>
      </div>
      <div class="stats">
        <div class="stat"><div class="stat-label">Lifetime value</div><div class="stat-value">${money(ct.ltv)}</div><div class="stat-hint">${num(ct.order_count)} orders · AOV ${money(ct.aov)}</div></div>
        <div class="stat"><div class="stat-label">Last order</div><div class="stat-value">${ct.last_order_at ? ago(ct.last_order_at) : "never"}</div><div class="stat-hint">${ct.first_order_at ? `first ${date(ct.first_order_at)}` : ""}</div></div>
        <div class="stat"><div class="stat-label">Open cart</div><div class="stat-value">${money(ct.cart_value)}</div><div class="stat-hint">${num(ct.cart_items)} items</div></div>
        <div class="stat"><div class="stat-label">Favourite category (30 d)</div><div class="stat-value" style=${{ fontSize: "1.15rem" }}>${ct.top_category_30d || "–"}</div></div>
      </div>
      <${Scores} t=${t} />
      <div class="grid-2-1 side-first">
        <div>
          <${Card} title="Orders" id="orders-card"><${Orders} orders=${p.orders} /></${Card}>
          <div class="grid">
            <${Card} title="Cart" id="cart"><${Items} items=${p.cart} empty="The cart is empty." /></${Card}>
            <${Card} title="Wishlist" id="wishlist"><${Items} items=${p.wishlist_items || p.wishlist} empty="Nothing on the wishlist." /></${Card}>
          </div>
          <${Timeline} id=${p.profile_id} recent=${p.recent_events} />
        </div>
        <div>
          <${Segments} p=${p} all=${segs.segments} />
          <${Consent} p=${p} />
          <${Card} title="Customer data" id="client-data"><${KV} obj=${t} id="traits" /></${Card}>
          <${Privacy} p=${p} />
        </div>
      </div>`;
    }}</${Async}>`;
}
