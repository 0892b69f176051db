// Shared components and hooks: loading/error states, cards, stats, tags, dialogs,
// toasts, debounced values and the async-data hook every page uses.
import { html, useEffect, useRef, useState } from "./html.js";
import { toDate } from "./format.js";

/** Run an async loader when deps change; {data, error, loading, reload}. A loader
 * that returns null (an optional route missing) leaves data null with no error. */
export function useAsync(loader, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(loader)
      .then((data) => live && setState({ data, error: null, loading: false }))
      .catch((error) => live && setState({ data: undefined, error, loading: false }));
    return () => { live = false; };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** Re-render every `ms` (relative times such as "3 minutes ago"). */
export function useTick(ms) {
  const [, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}

export const Loading = ({ label = "Loading" }) =>
  html`<p class="loading" role="status"><span class="spinner" aria-hidden="true"></span>${label}…</p>`;

export function ErrorBox({ error, retry }) {
  if (!error) return null;
  return html`<div class="error-box" role="alert">
    <strong>${error.status ? `Error ${error.status}: ` : ""}</strong>${String(error.message || error)}
    ${error.errors?.length ? html`<ul>${error.errors.map((e) => html`<li><code>${e.path}</code> ${e.message}</li>`)}</ul>` : null}
    ${retry ? html` <button class="btn small" onClick=${retry}>Retry</button>` : null}
  </div>`;
}

/** Render data, a spinner, or the error (with retry). */
export function Async({ state, children, label }) {
  if (state.error) return html`<${ErrorBox} error=${state.error} retry=${state.reload} />`;
  if (state.data === undefined) return html`<${Loading} label=${label} />`;
  return children(state.data);
}

export const Card = ({ title, actions, children, id, class: cls = "", wide }) => html`
  <section class="card ${wide ? "wide" : ""} ${cls}" id=${id} aria-labelledby=${title && id ? id + "-title" : undefined}>
    ${title || actions ? html`<header class="card-head">
      ${title ? html`<h2 id=${id ? id + "-title" : undefined}>${title}</h2>` : null}
      ${actions ? html`<div class="card-actions">${actions}</div>` : null}
    </header>` : null}
    ${children}
  </section>`;

export const Stat = ({ label, value, hint, id, tone }) => html`
  <div class="stat ${tone || ""}" id=${id}>
    <div class="stat-label">${label}</div>
    <div class="stat-value">${value}</div>
    ${hint ? html`<div class="stat-hint">${hint}</div>` : null}
  </div>`;

export const Tag = ({ children, onClick, active }) => onClick
  ? html`<button type="button" class="tag ${active ? "active" : ""}" aria-pressed=${active ? "true" : "false"} onClick=${onClick}>${children}</button>`
  : html`<span class="tag">${children}</span>`;

export const Empty = ({ children }) => html`<p class="empty">${children}</p>`;

/** A change as a coloured, signed figure. */
export function Delta({ value, text }) {
  const cls = value > 0 ? "up" : value < 0 ? "down" : "flat";
  const arrow = value > 0 ? "▲" : value < 0 ? "▼" : "";
  return html`<span class="delta ${cls}"><span aria-hidden="true">${arrow} </span>${text}</span>`;
}

/** A modal dialog (<dialog>, so focus and Escape are the browser's). */
export function Dialog({ title, open, onClose, children, actions }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} class="dialog" aria-labelledby="dialog-title" onClose=${onClose}>
    <h2 id="dialog-title">${title}</h2>
    <div class="dialog-body">${children}</div>
    <div class="dialog-actions">${actions}</div>
  </dialog>`;
}

let toastFn = null;
export function toast(message, kind = "ok") { toastFn?.(message, kind); }
export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    toastFn = (message, kind) => {
      const id = Math.random();
      setItems((xs) => [...xs, { id, message, kind }]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), 5000);
    };
    return () => { toastFn = null; };
  }, []);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${items.map((t) => html`<div class="toast ${t.kind}" key=${t.id}>${t.message}</div>`)}
  </div>`;
}

/** A sparkline on a true time axis: x is each point's instant, not its index. */
export function Sparkline({ points, width = 120, height = 28, label }) {
  const pts = (points || []).map((p) => [toDate(p.at || p.day)?.getTime(), p.size]).filter((p) => p[0] !== undefined && p[1] !== null);
  if (pts.length < 2) return html`<svg class="spark" width=${width} height=${height} role="img" aria-label=${label || "no history"}></svg>`;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => ((x - x0) / (x1 - x0 || 1)) * (width - 2) + 1;
  const sy = (y) => height - 2 - ((y - y0) / (y1 - y0 || 1)) * (height - 4);
  // a step line: a size holds until the next point
  let d = `M${sx(xs[0]).toFixed(1)},${sy(ys[0]).toFixed(1)}`;
  for (let i = 1; i < pts.length; i++) d += `H${sx(xs[i]).toFixed(1)}V${sy(ys[i]).toFixed(1)}`;
  const area = `${d}V${height}H${sx(xs[0]).toFixed(1)}Z`;
  return html`<svg class="spark" width=${width} height=${height} viewBox="0 0 ${width} ${height}" role="img" aria-label=${label}>
    <path d=${area} class="spark-area" />
    <path d=${d} class="spark-line" fill="none" />
  </svg>`;
}

export function navigate(hash) { location.hash = hash; }
export const segHref = (id) => `#/segments/${encodeURIComponent(id)}`;
export const profileHref = (id) => `#/profiles/${encodeURIComponent(id)}`;

/** A folder path with a small folder icon (no emoji: not every system has the font). */
export const Folder = ({ path }) => html`<span class="folder"><svg width="12" height="10" viewBox="0 0 12 10" aria-hidden="true"><path d="M0 1.5A1.5 1.5 0 0 1 1.5 0h3l1.2 1.3h4.8A1.5 1.5 0 0 1 12 2.8v5.7A1.5 1.5 0 0 1 10.5 10h-9A1.5 1.5 0 0 1 0 8.5z" fill="currentColor"/></svg> ${path}</span>`;
