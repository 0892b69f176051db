// Charts: uPlot (loaded on first use) for time series on a true date axis; plain SVG
// and HTML for the overlap heatmap and the transitions Sankey. Each chart carries a
// text alternative (a caption and a data table) for screen readers.
import { html, useEffect, useRef, useState } from "./html.js";
import { num, pct, dayLabel, toDate } from "./format.js";

let uPlotModule = null;
const loadUPlot = () => (uPlotModule ||= import("../../vendor/uPlot.esm.js").then((m) => m.default));

// members are whole numbers: ticks at 1, 2, 5, 10, 20, 50, ...
const COUNTS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7].map((p) => m * p)).sort((a, b) => a - b);
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Size over time (line, left axis) with daily entered / exited bars (right axis). */
export function SizeChart({ points, label = "Members" }) {
  const box = useRef(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!box.current || !points?.length) return;
    let plot = null, ro = null, dead = false;
    loadUPlot().then((uPlot) => {
      if (dead) return;
      const xs = points.map((p) => toDate(p.day || p.at).getTime() / 1000);
      const hasBars = points.some((p) => p.entered !== undefined);
      const data = [xs, points.map((p) => p.size)];
      const series = [{}, { label, stroke: css("--accent"), width: 2, fill: css("--accent-fill"),
        value: (u, v) => num(v), paths: hasBars ? undefined : uPlot.paths.stepped({ align: 1 }) }];
      const axes = [
        { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } },
        { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") }, values: (u, vs) => vs.map((v) => num(v)), size: 56, incrs: COUNTS },
      ];
      if (hasBars) {
        const bars = uPlot.paths.bars({ size: [0.35, 14], gap: 1 });
        data.push(points.map((p) => p.entered), points.map((p) => -p.exited));
        series.push(
          { label: "Entered", stroke: css("--good"), fill: css("--good"), paths: bars, scale: "n", points: { show: false }, value: (u, v) => num(v) },
          { label: "Exited", stroke: css("--bad"), fill: css("--bad"), paths: bars, scale: "n", points: { show: false }, value: (u, v) => num(v == null ? v : -v) },
        );
        axes.push({ scale: "n", side: 1, stroke: css("--muted"), grid: { show: false }, values: (u, vs) => vs.map((v) => num(Math.abs(v))), size: 48, incrs: COUNTS });
      }
      const width = Math.max(box.current.clientWidth, 280);
      plot = new uPlot({
        width, height: 260, series, axes,
        scales: { x: { time: true, range: (u, lo, hi) => (hi - lo < 3600 ? [lo - 3 * 86400, hi + 86400] : [lo, hi]) }, y: { range: (u, lo, hi) => [0, Math.max(hi * 1.1, 1)] }, n: { range: (u, lo, hi) => { const m = Math.max(Math.abs(lo), Math.abs(hi), 1); return [-m, m]; } } },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      }, data, box.current);
      ro = new ResizeObserver(() => plot && plot.setSize({ width: Math.max(box.current.clientWidth, 280), height: 260 }));
      ro.observe(box.current);
    }).catch(() => setFailed(true));
    return () => { dead = true; ro?.disconnect(); plot?.destroy(); };
  }, [points]);
  if (!points?.length) return html`<p class="empty">No history yet.</p>`;
  const last = points[points.length - 1];
  return html`<figure class="chart">
    <div ref=${box} class="chart-box" role="img" aria-label=${`${label} over time: ${num(points[0].size)} on ${dayLabel(points[0].day || points[0].at)}, ${num(last.size)} on ${dayLabel(last.day || last.at)}`}></div>
    ${failed ? html`<p class="error">The chart library did not load.</p>` : null}
    <details class="data-table"><summary>Data table</summary>
      <table><thead><tr><th scope="col">Day</th><th scope="col" class="num">Size</th>${last.entered !== undefined ? html`<th scope="col" class="num">Entered</th><th scope="col" class="num">Exited</th>` : null}</tr></thead>
      <tbody>${points.slice(-60).map((p) => html`<tr><td>${dayLabel(p.day || p.at)}</td><td class="num">${num(p.size)}</td>${p.entered !== undefined ? html`<td class="num">${num(p.entered)}</td><td class="num">${num(p.exited)}</td>` : null}</tr>`)}</tbody></table>
    </details>
  </figure>`;
}

/** A colour scale from white to the accent: background and a readable text colour. */
function heat(v) {
  const t = Math.max(0, Math.min(1, v ?? 0));
  const l = 97 - t * 60; // lightness
  return { background: `hsl(221 75% ${l}%)`, color: l < 62 ? "#fff" : "#102040" };
}

/** Overlap heatmap: rows and columns are segments, cells a ratio in [0, 1]. */
export function Heatmap({ names, values, counts, caption }) {
  return html`<div class="heatmap-wrap" tabindex="0"><table class="heatmap">
    <caption>${caption}</caption>
    <thead><tr><td></td>${names.map((n) => html`<th scope="col"><span>${n}</span></th>`)}</tr></thead>
    <tbody>${names.map((row, i) => html`<tr>
      <th scope="row">${row}</th>
      ${names.map((col, j) => {
        const v = values[i][j];
        return html`<td style=${heat(v)} title=${`${row} ∩ ${col}: ${num(counts[i][j])} (${pct(v)})`}>${pct(v, 0)}<span class="sr-only"> (${num(counts[i][j])} profiles)</span></td>`;
      })}
    </tr>`)}</tbody>
  </table></div>`;
}

const PALETTE = ["#2457c5", "#0f7b6c", "#9a3fb8", "#b5560b", "#c2185b", "#4e6b00", "#00639b", "#7a4a00"];

/** Transitions Sankey: places at A (left) flow to places at B (right). */
export function Sankey({ stages, atA, atB, flows, labels = {} }) {
  const names = [...stages, null];
  const full = (s) => (s === null ? "Outside the group" : labels[s] || s);
  const name = (s) => { const t = full(s); return t.length > 26 ? t.slice(0, 25) + "…" : t; };
  const W = 960, H = 380, nodeW = 14, gap = 10, side = 230;
  const total = Math.max(atA.reduce((a, b) => a + b, 0), atB.reduce((a, b) => a + b, 0), 1);
  const scale = (H - gap * names.length) / total;
  const layout = (sizes) => { let y = 0; return sizes.map((s) => { const n = { y, h: Math.max(s * scale, s ? 2 : 0) }; y += n.h + gap; return n; }); };
  const left = layout(atA), right = layout(atB);
  const outA = left.map((n) => n.y), inB = right.map((n) => n.y);
  const idx = (s) => (s === null ? names.length - 1 : stages.indexOf(s));
  const color = (i) => (i === names.length - 1 ? "#7b8597" : PALETTE[i % PALETTE.length]); // outside in grey
  const bands = flows.filter((f) => f.value > 0).map((f) => {
    const i = idx(f.source), j = idx(f.target), h = f.value * scale;
    const y0 = outA[i], y1 = inB[j];
    outA[i] += h; inB[j] += h;
    const x0 = side + nodeW, x1 = W - side - nodeW, mx = (x0 + x1) / 2;
    const d = `M${x0},${y0}C${mx},${y0} ${mx},${y1} ${x1},${y1}V${y1 + h}C${mx},${y1 + h} ${mx},${y0 + h} ${x0},${y0 + h}Z`;
    return html`<path d=${d} fill=${color(i)} class="sankey-flow"><title>${full(f.source)} → ${full(f.target)}: ${num(f.value)}</title></path>`;
  });
  const nodes = (where, lay, sizes) => lay.map((n, i) => {
    const x = where === "a" ? side : W - side - nodeW;
    if (!sizes[i]) return null;
    return html`<g>
      <rect x=${x} y=${n.y} width=${nodeW} height=${n.h} fill=${color(i)} />
      <text x=${where === "a" ? x - 6 : x + nodeW + 6} y=${n.y + n.h / 2} text-anchor=${where === "a" ? "end" : "start"} dominant-baseline="middle" class="sankey-label"><title>${full(names[i])}</title>${name(names[i])} (${num(sizes[i])})</text>
    </g>`;
  });
  return html`<div class="sankey-wrap" tabindex="0"><svg viewBox="0 0 ${W} ${H}" class="sankey" role="img" aria-label="Flows between stages; the table below lists them">
    ${bands}${nodes("a", left, atA)}${nodes("b", right, atB)}
  </svg></div>`;
}
