// The JSON API with the admin key in the Authorization header (never in a URL).
const KEY = "segflow.adminKey";
export const getKey = () => localStorage.getItem(KEY) || "";
export const setKey = (k) => (k ? localStorage.setItem(KEY, k) : localStorage.removeItem(KEY));

const listeners = new Set();
/** Called with no argument when the server refuses the key (401/403). */
export function onAuthFailure(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export class ApiError extends Error {
  constructor(status, message, errors = []) {
    super(message);
    this.status = status;
    this.errors = errors; // [{path, message}]
  }
}

export function headers(extra = {}) {
  return { Authorization: "Bearer " + getKey(), ...extra };
}

/** GET/POST/PUT/DELETE a JSON route; throws ApiError with the problem's paths. */
export async function api(path, { method = "GET", body, yaml = false, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = yaml ? "application/yaml" : "application/json";
    init.body = yaml ? body : JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401) listeners.forEach((fn) => fn());
  if (!r.ok) {
    const e = data && data.error;
    throw new ApiError(r.status, e ? e.message : (data && data.detail) || r.statusText, (e && e.errors) || []);
  }
  return data;
}

let known = null;
const bare = (template) => template.replace(/\{[^}]*\}/g, "{}");
/** The server's route templates and methods, from its OpenAPI document (read once
 * per page load), so a route this server lacks is never requested at all. */
function routes() {
  known ||= fetch("/openapi.json")
    .then((r) => (r.ok ? r.json() : null))
    .then((doc) => doc && Object.fromEntries(Object.entries(doc.paths || {}).map(([p, ops]) => [bare(p), Object.keys(ops).map((m) => m.toUpperCase())])))
    .catch(() => null);
  return known;
}

/** Whether this server has the route template, e.g. "/v1/segments/{segment_id}/daily"
 * (true when it cannot tell). */
export async function hasRoute(template, method = "GET") {
  const list = await routes();
  return !list || !!list[bare(template)]?.includes(method);
}

/** Like api, but null when the route does not exist on this server (an older
 * server, or a panel whose backend is not there yet): the caller hides the panel.
 * `route` names the template when the path carries ids. */
export async function optional(path, opts = {}) {
  if (!(await hasRoute(opts.route || path.split("?")[0], opts.method || "GET"))) return null;
  try {
    return await api(path, opts);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}

/** Download a route's body as a file (the key stays in the header). */
export async function download(path, filename) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) {
    const data = await r.json().catch(() => null);
    throw new ApiError(r.status, data?.error?.message || r.statusText);
  }
  const blob = await r.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export const enc = encodeURIComponent;

/** A query string from an object; arrays repeat the key, empty values are left out. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}
