// Server-Sent Events over fetch + ReadableStream, so the admin key travels in the
// Authorization header (EventSource can only put it in the URL). Reconnects with
// Last-Event-ID after a dropped connection, so no change is missed.
import { headers } from "./api.js";

/**
 * Follow the change stream; onChange(change, kind) per entered/exited event.
 * Returns a function that stops it. onState("live" | "reconnecting" | "unavailable").
 */
export function followChanges({ segments = [], onChange, onState = () => {} }) {
  const ctrl = new AbortController();
  let lastId = null;
  let delay = 1000;
  const q = new URLSearchParams();
  for (const s of segments) q.append("segment_id", s);
  const url = "/v1/changes/stream" + (segments.length ? "?" + q : "");

  async function connect() {
    while (!ctrl.signal.aborted) {
      try {
        const h = headers({ Accept: "text/event-stream" });
        if (lastId !== null) h["Last-Event-ID"] = lastId;
        const r = await fetch(url, { headers: h, signal: ctrl.signal, cache: "no-store" });
        if (r.status === 404 || r.status === 401 || r.status === 403) { onState("unavailable"); return; }
        if (!r.ok || !r.body) throw new Error(String(r.status));
        onState("live");
        delay = 1000;
        await read(r.body.getReader());
      } catch (e) {
        if (ctrl.signal.aborted) return;
      }
      onState("reconnecting");
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message", data = "", id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data += (data ? "\n" : "") + val;
          else if (field === "id") id = val;
        }
        if (id !== null) lastId = id;
        if ((event === "entered" || event === "exited") && data) {
          try { onChange(JSON.parse(data), event); } catch { /* a malformed frame is skipped */ }
        }
      }
    }
  }

  connect();
  return () => ctrl.abort();
}
