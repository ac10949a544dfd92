// A bar chart of requests and errors per day, drawn as SVG with the DOM
// (no library, no inline style: colours come from console.css classes).

const svgNS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const e = document.createElementNS(svgNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds a maximum up so that the axis has four whole, round
// steps.
function niceMax(v) {
  const raw = Math.max(v, 1) / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    const step = m * p;
    if (step >= raw && Number.isInteger(step)) return 4 * step;
  }
  return 40 * p;
}

// lastDays returns the last n UTC days, oldest first, as YYYY-MM-DD.
export function lastDays(n, now = new Date()) {
  const out = [];
  const base = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  for (let i = n - 1; i >= 0; i--) {
    out.push(new Date(base - i * 86400000).toISOString().slice(0, 10));
  }
  return out;
}

// fillDays puts the API's {group, count, errors} rows on every day of days,
// with zeros where there was no traffic.
export function fillDays(days, rows) {
  const byDay = new Map(rows.map((r) => [r.group, r]));
  return days.map((day) => {
    const r = byDay.get(day);
    return { day, count: r ? r.count : 0, errors: r ? r.errors : 0 };
  });
}

// renderChart replaces container's content with the chart of points
// ([{day, count, errors}]).
export function renderChart(container, points) {
  const W = 720, H = 260, left = 44, right = 12, top = 16, bottom = 40;
  const plotW = W - left - right, plotH = H - top - bottom;
  const total = points.reduce((s, p) => s + p.count, 0);
  const errors = points.reduce((s, p) => s + p.errors, 0);
  const max = niceMax(Math.max(0, ...points.map((p) => p.count)));
  const y = (v) => top + plotH - (v / max) * plotH;
  const slot = plotW / Math.max(points.length, 1);
  const barW = Math.max(2, slot * 0.7);

  const summary = `${total} requests and ${errors} errors over the last ${points.length} days`;
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet", "data-total": total, "data-errors": errors,
  });
  svg.append(el("title", {}, summary));

  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    const yy = y(v);
    svg.append(el("line", { x1: left, x2: W - right, y1: yy, y2: yy, class: i === 0 ? "axis" : "grid" }));
    svg.append(el("text", { x: left - 6, y: yy + 4, class: "tick", "text-anchor": "end" },
      Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }

  points.forEach((p, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const g = el("g", { class: "day", "data-day": p.day, "data-count": p.count, "data-errors": p.errors });
    g.append(el("title", {}, `${p.day}: ${p.count} requests, ${p.errors} errors`));
    if (p.count > 0) {
      g.append(el("rect", { x, y: y(p.count), width: barW, height: Math.max(1, y(0) - y(p.count)), class: "bar" }));
    }
    if (p.errors > 0) {
      g.append(el("rect", { x, y: y(p.errors), width: barW, height: Math.max(1, y(0) - y(p.errors)), class: "bar-error" }));
    }
    // A transparent target so the tooltip works on empty days too.
    g.append(el("rect", { x: left + i * slot, y: top, width: slot, height: plotH, class: "hit" }));
    svg.append(g);
    if (i % 5 === points.length % 5 || i === points.length - 1) {
      svg.append(el("text", { x: x + barW / 2, y: H - bottom + 16, class: "tick", "text-anchor": "middle" },
        p.day.slice(5)));
    }
  });

  const legend = el("g", { class: "legend", transform: `translate(${left}, ${H - 10})` });
  legend.append(el("rect", { x: 0, y: -9, width: 10, height: 10, class: "bar" }));
  legend.append(el("text", { x: 14, y: 0, class: "tick" }, "Requests"));
  legend.append(el("rect", { x: 90, y: -9, width: 10, height: 10, class: "bar-error" }));
  legend.append(el("text", { x: 104, y: 0, class: "tick" }, "Errors (status ≥ 400)"));
  svg.append(legend);

  container.replaceChildren(svg);
  return { total, errors };
}
