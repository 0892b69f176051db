// segflow web UI: the shell (navigation, key, routing). Pages are ES modules under
// pages/, loaded when first visited. Hash routes keep every view linkable:
//   #/                  dashboard          #/segments        the segment list
//   #/segments/ID       one segment        #/segments/ID/edit  the builder
//   #/new[?from=ID]     new (or duplicate) #/profiles[?q=]   profile search
//   #/profiles/ID       one customer       #/overlap #/journeys #/settings
//   #/groups            priority groups    #/groups/ID       one group
import { html, render, useEffect, useErrorBoundary, useState } from "./lib/html.js";
import { getKey, setKey, onAuthFailure } from "./lib/api.js";
import { Toasts, Loading, ErrorBox } from "./lib/ui.js";

const PAGES = {
  dashboard: () => import("./pages/dashboard.js"),
  segments: () => import("./pages/segments.js"),
  segment: () => import("./pages/segment.js"),
  builder: () => import("./pages/builder.js"),
  profiles: () => import("./pages/profiles.js"),
  profile: () => import("./pages/profile.js"),
  overlap: () => import("./pages/overlap.js"),
  journeys: () => import("./pages/journeys.js"),
  groups: () => import("./pages/groups.js"),
  group: () => import("./pages/groups.js"),
  settings: () => import("./pages/settings.js"),
};

const NAV = [
  ["#/", "Dashboard", "dashboard"],
  ["#/segments", "Segments", "segments"],
  ["#/profiles", "Customers", "profiles"],
  ["#/overlap", "Overlap", "overlap"],
  ["#/journeys", "Journeys", "journeys"],
  ["#/groups", "Groups", "groups"],
  ["#/settings", "Settings", "settings"],
];

/** The hash as {page, args, query}. */
export function parseRoute(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  const [head, id, sub] = parts;
  if (!head) return { page: "dashboard", params };
  if (head === "new") return { page: "builder", params };
  if (head === "segments" || head === "segment") {
    if (!id) return { page: "segments", params };
    return { page: sub === "edit" ? "builder" : "segment", id, params };
  }
  if (head === "profiles" || head === "profile") return id ? { page: "profile", id, params } : { page: "profiles", params };
  if (head === "groups") return id ? { page: "group", id, params } : { page: "groups", params };
  if (PAGES[head]) return { page: head, params };
  return { page: "notfound", params };
}

function KeyForm({ onKey }) {
  const [value, setValue] = useState("");
  return html`<section class="card key-card">
    <h1>Sign in</h1>
    <p>Paste an admin key (create one with <code>segflow keys create --kind admin</code>; <code>segflow demo</code> prints one). It stays in this browser and is sent only in the <code>Authorization</code> header.</p>
    <form id="key-form" onSubmit=${(e) => { e.preventDefault(); if (value.trim()) { setKey(value.trim()); onKey(); } }}>
      <label for="key-input">Admin key</label>
      <div class="row">
        <input id="key-input" type="password" autocomplete="off" placeholder="sfa_…" value=${value} onInput=${(e) => setValue(e.target.value)} required />
        <button class="btn primary" type="submit">Use key</button>
      </div>
    </form>
  </section>`;
}

function NotFound() {
  return html`<h1>Page not found</h1><p><a href="#/">Back to the dashboard</a></p>`;
}

function Page({ route }) {
  const [loaded, setLoaded] = useState(null); // {page, module}
  const [error, setError] = useState(null);
  // a page that fails while drawing shows its error instead of blanking the app
  const [crash, reset] = useErrorBoundary((e) => console.warn("page failed:", e));
  useEffect(() => { if (crash) reset(); }, [route.page, route.id]);
  useEffect(() => {
    let live = true;
    setError(null);
    const load = PAGES[route.page] || (() => Promise.resolve({ default: NotFound }));
    load().then((m) => live && setLoaded({ page: route.page, module: m })).catch((e) => live && setError(e));
    return () => { live = false; };
  }, [route.page]);
  if (crash) return html`<${ErrorBox} error=${crash} retry=${reset} />`;
  if (error) return html`<${ErrorBox} error=${error} />`;
  // never render one page's module with another page's route
  if (!loaded || loaded.page !== route.page) return html`<${Loading} />`;
  const P = loaded.module.default;
  return html`<${P} ...${route} key=${location.hash.split("?")[0]} />`;
}

function App() {
  const [route, setRoute] = useState(parseRoute());
  const [hasKey, setHasKey] = useState(!!getKey());
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    const on = () => { setRoute(parseRoute()); setMenu(false); window.scrollTo(0, 0); };
    window.addEventListener("hashchange", on);
    const off = onAuthFailure(() => { setKey(""); setHasKey(false); });
    return () => { window.removeEventListener("hashchange", on); off(); };
  }, []);
  useEffect(() => {
    const label = NAV.find((n) => n[2] === route.page)?.[1];
    document.title = label ? `${label} · segflow` : "segflow";
  }, [route.page]);
  const section = route.page === "segment" || route.page === "builder" ? "segments" : route.page === "profile" ? "profiles" : route.page === "group" ? "groups" : route.page;
  return html`
    <header class="topbar">
      <a href="#/" class="brand" aria-label="segflow home">segflow</a>
      <button class="menu-toggle" aria-expanded=${menu ? "true" : "false"} aria-controls="nav" onClick=${() => setMenu(!menu)}>Menu</button>
      <nav id="nav" class=${menu ? "open" : ""} aria-label="Main">
        ${NAV.map(([href, label, page]) => html`<a href=${href} aria-current=${section === page ? "page" : undefined}>${label}</a>`)}
        <a href="/docs" class="muted-link">API docs</a>
        ${hasKey ? html`<button class="linkish" id="logout" onClick=${() => { setKey(""); setHasKey(false); }}>Sign out</button>` : null}
      </nav>
    </header>
    <main id="main" class="main" tabindex="-1">
      ${hasKey ? html`<${Page} route=${route} />` : html`<${KeyForm} onKey=${() => setHasKey(true)} />`}
    </main>
    <${Toasts} />`;
}

render(html`<${App} />`, document.getElementById("app"));
