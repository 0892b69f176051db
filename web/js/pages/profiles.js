// Customer search: by email, name or id (substring), with the latest activity.
import { html, useState } from "../lib/html.js";
import { api, qs } from "../lib/api.js";
import { ago, dateTime } from "../lib/format.js";
import { Async, Empty, profileHref, useAsync, useDebounced } from "../lib/ui.js";

export default function Profiles({ params }) {
  const [q, setQ] = useState(params.q || "");
  const dq = useDebounced(q.trim(), 300);
  const state = useAsync(() => api(`/v1/profiles${qs({ q: dq, limit: 50 })}`), [dq]);
  return html`
    <div class="page-head"><div><h1>Customers</h1><p class="sub">Find a customer by email, name or id.</p></div></div>
    <section class="card">
      <form role="search" onSubmit=${(e) => { e.preventDefault(); }}>
        <label for="profile-search">Search customers</label>
        <div class="row"><input id="profile-search" class="search" type="search" placeholder="email, name or id" value=${q} onInput=${(e) => setQ(e.target.value)} autofocus /></div>
      </form>
      <${Async} state=${state}>${(d) => d.profiles.length ? html`<div class="table-wrap" tabindex="0"><table id="profiles">
        <thead><tr><th scope="col">Customer</th><th scope="col">Email</th><th scope="col">Last seen</th></tr></thead>
        <tbody>${d.profiles.map((p) => html`<tr>
          <td><a href=${profileHref(p.profile_id)}>${p.name || p.profile_id}</a>${p.name ? html`<div class="small muted mono">${p.profile_id}</div>` : null}</td>
          <td>${p.email || html`<span class="muted">–</span>`}</td>
          <td title=${dateTime(p.last_seen)}>${ago(p.last_seen)}</td></tr>`)}</tbody></table></div>`
        : html`<${Empty}>No customer matches “${dq}”.</${Empty}>`}</${Async}>
    </section>`;
}
