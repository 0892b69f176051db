// The segment language on the client: which kind a condition node is, the
// comparisons each value type takes, a plain-English summary of a rule, a YAML
// rendering of a definition (segments as code) and a line diff between versions.
import { durationText, num } from "./format.js";

export const COMPARISONS = ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "contains",
  "starts_with", "ends_with", "exists", "not_exists", "within_last", "older_than", "before", "after"];

export const OPS_BY_TYPE = {
  number: ["gt", "gte", "lt", "lte", "eq", "ne", "between", "in", "not_in", "exists", "not_exists"],
  string: ["eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "exists", "not_exists"],
  boolean: ["eq", "ne", "exists", "not_exists"],
  timestamp: ["within_last", "older_than", "before", "after", "exists", "not_exists"],
  list: ["contains", "exists", "not_exists"],
  object: ["exists", "not_exists"],
};
export const OP_LABEL = {
  eq: "is", ne: "is not", gt: "is more than", gte: "is at least", lt: "is less than", lte: "is at most",
  between: "is between", in: "is one of", not_in: "is none of", contains: "contains",
  starts_with: "starts with", ends_with: "ends with", exists: "is set", not_exists: "is not set",
  within_last: "is within the last", older_than: "is older than", before: "is before", after: "is after",
};

export const KINDS = [
  ["event", "Did an event"],
  ["trait", "Profile trait"],
  ["computed", "Computed trait"],
  ["page", "Viewed a page"],
  ["abandonment", "Abandoned (A not followed by B)"],
  ["sequence", "Did events in order"],
  ["in_segment", "In another segment"],
  ["bucket", "Random bucket (sample)"],
];

export const COMPUTED = [
  { name: "ltv", type: "number", description: "lifetime revenue (sum of Order Completed revenue)" },
  { name: "order_count", type: "number", description: "number of orders" },
  { name: "aov", type: "number", description: "average order value" },
  { name: "first_order_at", type: "timestamp", description: "time of the first order" },
  { name: "last_order_at", type: "timestamp", description: "time of the latest order" },
  { name: "days_since_last_order", type: "number", description: "days since the latest order" },
  { name: "top_category_30d", type: "string", description: "most viewed category in 30 days" },
  { name: "wishlist", type: "list", description: "product ids on the wishlist" },
  { name: "cart_items", type: "number", description: "items in the open cart" },
  { name: "cart_value", type: "number", description: "value of the open cart" },
];

/** Which kind of node this is ("all", "any", "not" or a row kind). */
export function kindOf(n) {
  if (!n || typeof n !== "object") return "unknown";
  if ("all" in n) return "all";
  if ("any" in n) return "any";
  if ("not" in n) return "not";
  if ("sequence" in n) return "sequence";
  if ("in_segment" in n) return "in_segment";
  if ("bucket" in n) return "bucket";
  if ("trait" in n) return "trait";
  if ("computed" in n) return "computed";
  if ("not_followed_by" in n) return "abandonment";
  if ("page" in n || "screen" in n) return "page";
  if ("event" in n) return "event";
  return "unknown";
}

export function newNode(kind) {
  switch (kind) {
    case "all": return { all: [] };
    case "any": return { any: [] };
    case "trait": return { trait: "", eq: "" };
    case "computed": return { computed: "ltv", gt: 0 };
    case "page": return { page: true, within: "7d" };
    case "abandonment": return { event: "Product Added", not_followed_by: "Order Completed", for: "24h", within: "7d" };
    case "sequence": return { sequence: [{ event: "" }, { event: "" }], within: "7d" };
    case "in_segment": return { in_segment: "" };
    case "bucket": return { bucket: { salt: "sample", from: 0, to: 10 } };
    default: return { event: "", within: "30d" };
  }
}

/** The comparison key a node carries (one of COMPARISONS), or null. */
export function opOf(n) {
  return COMPARISONS.find((k) => k in n) ?? null;
}
/** A copy of n with its comparison replaced. */
export function withOp(n, op, value) {
  const out = {};
  for (const [k, v] of Object.entries(n)) if (!COMPARISONS.includes(k)) out[k] = v;
  if (op) out[op] = value;
  return out;
}

const q = (v) => (typeof v === "string" ? `“${v}”` : Array.isArray(v) ? v.map(q).join(", ") : String(v));
const prop = (p) => String(p).replace(/^properties\./, "");

export function compText(n) {
  const op = opOf(n);
  if (!op) return "";
  const v = n[op];
  if (op === "exists") return v === false ? "is not set" : "is set";
  if (op === "not_exists") return "is not set";
  if (op === "between") return `is between ${num(v?.[0], 2)} and ${num(v?.[1], 2)}`;
  if (op === "within_last" || op === "older_than") return `${OP_LABEL[op]} ${durationText(v)}`;
  if (typeof v === "number") return `${OP_LABEL[op]} ${num(v, 2)}`;
  return `${OP_LABEL[op]} ${q(v)}`;
}

export function windowText(w) {
  if (w === undefined || w === null) return "ever";
  if (typeof w === "string") return `in the last ${durationText(w)}`;
  if (w.from_ago !== undefined) return `between ${durationText(w.from_ago)} and ${w.to_ago === 0 || w.to_ago === "0" ? "now" : durationText(w.to_ago) + " ago"}`;
  if (w.since) return `since ${w.since}`;
  if (w.from) return `from ${w.from} to ${w.to}`;
  return "";
}

function filterText(f) {
  const what = f.page !== undefined ? (f.page === true ? "any page" : `page ${q(f.page)}`)
    : f.screen !== undefined ? (f.screen === true ? "any screen" : `screen ${q(f.screen)}`)
      : Array.isArray(f.event) ? f.event.map(q).join(" or ") : q(f.event || "?");
  const where = (f.where || []).map((p) => `${prop(p.property)} ${compText(p)}`).join(" and ");
  return where ? `${what} where ${where}` : what;
}

function eventText(n, negated) {
  const op = opOf(n);
  const measure = n.measure || "count";
  const win = windowText(n.within);
  const f = filterText(n);
  if (measure === "count") {
    const v = op ? n[op] : 1;
    const times = (k) => (k === 1 ? "once" : `${num(k)} times`);
    if (!op || (op === "gte" && v === 1)) return `${negated ? "did not do" : "did"} ${f} ${win}`;
    if (op === "gte") return `did ${f} at least ${times(v)} ${win}`;
    if (op === "gt") return `did ${f} more than ${times(v)} ${win}`;
    if (op === "lt") return `did ${f} fewer than ${times(v)} ${win}`;
    if (op === "lte") return `did ${f} at most ${times(v)} ${win}`;
    if (op === "eq") return `did ${f} exactly ${times(v)} ${win}`;
    return `number of ${f} ${win} ${compText(n)}`;
  }
  const label = { sum: "total", avg: "average", min: "smallest", max: "largest", distinct: "number of distinct", top: "most frequent", first_time: "first time of", last_time: "latest time of" }[measure] || measure;
  const of = n.of ? ` ${prop(n.of)}` : "";
  return `${label}${of} of ${f} ${win} ${compText(n)}`;
}

/** A condition in plain English (one line per row; groups nest). */
export function summarize(n, negated = false) {
  const kind = kindOf(n);
  switch (kind) {
    case "all": case "any": {
      const items = n[kind];
      if (!items.length) return kind === "all" ? "everyone" : "nobody";
      return `${negated ? "not " : ""}${kind === "all" ? "all of" : "any of"}: ${items.map((x) => `(${summarize(x)})`).join(kind === "all" ? " and " : " or ")}`;
    }
    case "not": {
      const inner = n.not;
      if (["event", "page"].includes(kindOf(inner)) && (!opOf(inner) || (opOf(inner) === "gte" && inner.gte === 1)) && (inner.measure || "count") === "count") return eventText(inner, true);
      return `not ${summarize(inner)}`;
    }
    case "trait": return `${n.trait || "?"} ${compText(n)}`;
    case "computed": return `${n.computed} ${compText(n)}`;
    case "event": case "page": return eventText(n, negated);
    case "abandonment": return `did ${filterText(n)} ${windowText(n.within)} with no ${typeof n.not_followed_by === "object" && !Array.isArray(n.not_followed_by) ? filterText(n.not_followed_by) : q(n.not_followed_by)} within ${durationText(n.for)} after it`;
    case "sequence": return `did ${n.sequence.map(filterText).join(", then ")} ${windowText(n.within)}${n.span ? `, first to last within ${durationText(n.span)}` : ""}`;
    case "in_segment": return `is in segment ${q(n.in_segment || "?")}`;
    case "bucket": return `falls in the random ${num(n.bucket.from ?? 0)}–${num(n.bucket.to)} % bucket of ${q(n.bucket.salt)}`;
    default: return JSON.stringify(n);
  }
}

// ---------------------------------------------------------------- YAML rendering

const PLAIN = /^([A-Za-z_][A-Za-z0-9_ .\-/&]*|\d+(\.\d+)?[smhdw])$/;
const RESERVED = /^(true|false|null|yes|no|on|off|~|y|n)$/i;
function scalar(v) {
  if (v === null) return "null";
  if (typeof v === "string") {
    return PLAIN.test(v) && !RESERVED.test(v) && !v.endsWith(" ") && !/: | #/.test(v) ? v : JSON.stringify(v);
  }
  return String(v);
}
/** A definition as block YAML (what `segflow segments apply` reads). */
export function toYaml(v, indent = "") {
  if (Array.isArray(v)) {
    if (!v.length) return "[]";
    if (v.every((x) => x === null || typeof x !== "object")) return `[${v.map(scalar).join(", ")}]`;
    return "\n" + v.map((x) => `${indent}- ${toYaml(x, indent + "  ").replace(/^\n\s*/, "")}`).join("\n");
  }
  if (v && typeof v === "object") {
    const entries = Object.entries(v);
    if (!entries.length) return "{}";
    const lines = entries.map(([k, x]) => {
      const body = toYaml(x, indent + "  ");
      return `${indent}${scalar(k)}:${body.startsWith("\n") ? body : " " + body}`;
    });
    return "\n" + lines.join("\n");
  }
  return scalar(v);
}
export const yamlText = (def) => toYaml(def).replace(/^\n/, "") + "\n";

// ---------------------------------------------------------------- line diff

/** Lines of a and b as [kind, line] with kind " ", "-" or "+" (LCS). */
export function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const m = x.length, n = y.length;
  const L = Array.from({ length: m + 1 }, () => new Uint16Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < m && j < n) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < m) out.push(["-", x[i++]]);
  while (j < n) out.push(["+", y[j++]]);
  return out;
}

/** A segment id from a name: "VIP buyers (EU)" -> "vip_buyers_eu". */
export function slug(name) {
  return String(name).toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 64);
}

/** Drop the keys the server adds (version) so a definition can be saved again. */
export function editable(def) {
  const { version, ...rest } = def || {};
  return rest;
}
