// The /c2c page's health history: a small inline-SVG sparkline next to each check of the Health
// section, from GET /health_checks/history (each check's last results, kept by the server).
//
// A separate ES module: it watches the health results region and decorates each rendered check;
// index.js knows nothing of it. The SVG uses presentation attributes and classes only (the page's
// CSP has no 'unsafe-inline'); every text goes in through textContent. The history is fetched only
// by callers with read-only access (the endpoint answers 403 to the others).

const SVG = "http://www.w3.org/2000/svg";
const BASE = document.body.dataset.base ?? "";
const READ_ONLY = document.body.dataset.readOnly === "true";
const REQUEST_TIMEOUT_MS = 30_000;
const WIDTH = 120;
const HEIGHT = 24;
const PAD = 3;

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

/** A duration in seconds, short: "850 µs", "12.3 ms", "5 s". */
export function shortDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "?";
  if (seconds < 1e-3) return `${Number((seconds * 1e6).toPrecision(3))} µs`;
  if (seconds < 1) return `${Number((seconds * 1e3).toPrecision(3))} ms`;
  return `${Number(seconds.toPrecision(3))} s`;
}

function clock(time) {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? "?" : date.toLocaleTimeString(undefined, { hour12: false });
}

function describePoint(point) {
  const failed = !(Number(point?.status_code) < 400);
  return `${failed ? "Failed" : "OK"} ${point?.status_code ?? "?"} at ${clock(point?.time)}, ${shortDuration(point?.time_taken)}`;
}

/** The summary read by screen readers and shown as the SVG's title. */
export function summarize(name, points) {
  const failures = points.filter((point) => !(Number(point?.status_code) < 400)).length;
  const runs = `${points.length} run${points.length === 1 ? "" : "s"}`;
  const last = points.length ? `; last: ${describePoint(points[points.length - 1])}` : "";
  return `History of ${name}: ${runs}, ${failures ? `${failures} failed` : "none failed"}${last}`;
}

/**
 * The sparkline of one check's last results (oldest first): latency as a line, right-aligned on
 * `size` slots so that it fills up over time, each failure marked by a red dot with its own title.
 */
export function sparkline(name, points, size) {
  const slots = Math.max(size, points.length, 2);
  const step = (WIDTH - 2 * PAD) / (slots - 1);
  const slowest = Math.max(0, ...points.map((point) => Number(point?.time_taken) || 0));
  const coordinates = points.map((point, index) => {
    const x = WIDTH - PAD - (points.length - 1 - index) * step;
    const ratio = slowest > 0 ? (Number(point?.time_taken) || 0) / slowest : 0;
    return [Number(x.toFixed(2)), Number((HEIGHT - PAD - ratio * (HEIGHT - 2 * PAD)).toFixed(2))];
  });
  const label = summarize(name, points);
  const chart = svg(
    "svg",
    {
      class: "sparkline",
      width: WIDTH,
      height: HEIGHT,
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": label,
      focusable: "false",
    },
    svg("title", {}, label),
    svg("line", { class: "spark-base", x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD, stroke: "currentColor", "stroke-width": 1, "stroke-opacity": 0.3 }),
  );
  if (coordinates.length > 1) {
    const line = coordinates.map(([x, y]) => `${x},${y}`).join(" ");
    chart.append(svg("polyline", { class: "spark-line", points: line, fill: "none", stroke: "currentColor", "stroke-width": 1.5, "stroke-linejoin": "round" }));
  }
  points.forEach((point, index) => {
    const [x, y] = coordinates[index];
    const failed = !(Number(point?.status_code) < 400);
    if (failed) {
      const mark = svg("g", { class: "spark-fail", "data-status": String(point?.status_code ?? "") });
      mark.append(
        svg("title", {}, describePoint(point)),
        svg("line", { x1: x, y1: 1, x2: x, y2: HEIGHT - 1, stroke: "#b3261e", "stroke-width": 1, "stroke-opacity": 0.5 }),
        svg("circle", { cx: x, cy: y, r: 3, fill: "#b3261e", stroke: "#ffffff", "stroke-width": 1 }),
      );
      chart.append(mark);
    } else if (index === points.length - 1 || coordinates.length === 1) {
      chart.append(svg("circle", { class: "spark-last", cx: x, cy: y, r: 2, fill: "currentColor" }));
    }
  });
  return chart;
}

async function fetchHistory() {
  const response = await fetch(`${BASE}/health_checks/history`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (!response.ok) return null;
  return response.json();
}

let generation = 0;

/** Put a sparkline next to the name of each check shown in `region` (a fresh health report). */
export async function decorate(region) {
  const current = ++generation;
  const items = [...region.querySelectorAll(".checks > li.check")];
  if (!items.length) return;
  let data;
  try {
    data = await fetchHistory();
  } catch (error) {
    console.warn("health history:", error);
    return;
  }
  if (current !== generation || !Array.isArray(data?.checks) || !(Number(data?.size) > 0)) return;
  const byName = new Map(data.checks.map((entry) => [String(entry?.name), Array.isArray(entry?.history) ? entry.history : []]));
  for (const item of items) {
    const name = item.querySelector(".check-name")?.textContent ?? "";
    const points = byName.get(name);
    if (!points?.length || item.querySelector(".check-history")) continue;
    const failures = points.filter((point) => !(Number(point?.status_code) < 400)).length;
    const note = document.createElement("span");
    note.className = "history-note";
    note.setAttribute("aria-hidden", "true"); // the SVG's label says it, and more
    note.textContent = failures ? `${failures}/${points.length} failed` : `${points.length} OK`;
    const holder = document.createElement("span");
    holder.className = `check-history${failures ? " has-failures" : ""}`;
    holder.append(sparkline(name, points, Number(data.size)), note);
    item.querySelector(".check-name")?.after(holder);
  }
}

function setup() {
  const region = document.querySelector('[data-output="health"]');
  if (!region || !READ_ONLY) return;
  // index.js replaces the region's children with each new report.
  new MutationObserver(() => decorate(region)).observe(region, { childList: true });
}

setup();
