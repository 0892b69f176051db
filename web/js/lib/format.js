// Locale-aware numbers, money, dates and durations (Intl, the browser's locale).
const locale = navigator.languages?.[0] || navigator.language || "en-US";
const cache = new Map();
function fmt(kind, opts) {
  const key = kind + JSON.stringify(opts);
  if (!cache.has(key)) {
    cache.set(key, kind === "n" ? new Intl.NumberFormat(locale, opts)
      : kind === "d" ? new Intl.DateTimeFormat(locale, opts)
        : new Intl.RelativeTimeFormat(locale, opts));
  }
  return cache.get(key);
}

const dash = "–";
export const isNum = (v) => typeof v === "number" && Number.isFinite(v);

export function num(v, digits = 0) {
  return isNum(v) ? fmt("n", { maximumFractionDigits: digits }).format(v) : dash;
}
export function compact(v) {
  return isNum(v) ? fmt("n", { notation: "compact", maximumFractionDigits: 1 }).format(v) : dash;
}
export function money(v, currency = "USD", digits) {
  if (!isNum(v)) return dash;
  const d = digits ?? (Math.abs(v) >= 1000 ? 0 : 2);
  return fmt("n", { style: "currency", currency, maximumFractionDigits: d, minimumFractionDigits: d }).format(v);
}
export function pct(v, digits = 1) {
  return isNum(v) ? fmt("n", { style: "percent", maximumFractionDigits: digits }).format(v) : dash;
}
/** A signed change: "+12", "−3", with the percentage when given. */
export function signed(v, ratio) {
  if (!isNum(v)) return dash;
  const s = fmt("n", { signDisplay: "exceptZero", maximumFractionDigits: 0 }).format(v);
  return isNum(ratio) ? `${s} (${fmt("n", { style: "percent", signDisplay: "exceptZero", maximumFractionDigits: 1 }).format(ratio)})` : s;
}
export function toDate(v) {
  if (v === null || v === undefined || v === "") return null;
  const d = v instanceof Date ? v : new Date(typeof v === "string" && !/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v + "Z" : v);
  return Number.isNaN(d.getTime()) ? null : d;
}
export function date(v) {
  const d = toDate(v);
  return d ? fmt("d", { dateStyle: "medium" }).format(d) : dash;
}
export function dateTime(v) {
  const d = toDate(v);
  return d ? fmt("d", { dateStyle: "medium", timeStyle: "short" }).format(d) : dash;
}
export function time(v) {
  const d = toDate(v);
  return d ? fmt("d", { timeStyle: "medium" }).format(d) : dash;
}
export function dayLabel(v) {
  const d = toDate(v);
  return d ? fmt("d", { month: "short", day: "numeric", timeZone: "UTC" }).format(d) : dash;
}
const UNITS = [["year", 31536e6], ["month", 2592e6], ["week", 6048e5], ["day", 864e5], ["hour", 36e5], ["minute", 6e4], ["second", 1e3]];
/** "3 hours ago", "in 2 days". */
export function ago(v, now = Date.now()) {
  const d = toDate(v);
  if (!d) return dash;
  const diff = d.getTime() - now;
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === "second") {
      return fmt("r", { numeric: "auto" }).format(Math.round(diff / ms), unit);
    }
  }
  return dash;
}
/** A length of time in microseconds or milliseconds as "3 days", "5 hours". */
export function duration(ms) {
  if (!isNum(ms)) return dash;
  for (const [unit, size] of UNITS) {
    if (ms >= size || unit === "second") {
      return fmt("n", { style: "unit", unit, unitDisplay: "long", maximumFractionDigits: 1 }).format(ms / size);
    }
  }
  return dash;
}
/** A segflow duration ("48h", "2w", "180d") in words: "48 hours". */
export function durationText(d) {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(String(d ?? "").trim());
  if (!m) return String(d ?? "");
  const unit = { s: "second", m: "minute", h: "hour", d: "day", w: "week" }[m[2]];
  return fmt("n", { style: "unit", unit, unitDisplay: "long" }).format(Number(m[1]));
}
export { locale };
