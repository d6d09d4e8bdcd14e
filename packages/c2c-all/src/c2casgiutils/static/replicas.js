// The "Replicas" section of the /c2c page: every replica side by side (GET /c2c/replicas).
//
// Its own module (index.js is loaded with a cache-busting query: importing it again would run it
// twice); it imports only sections.js, which has no side effect. Server data goes into the page
// through textContent only. A row that differs from most replicas is marked by a class and a text
// marker ("≠"), not by colour alone.

import { describeError, el, failure, getJson, isBusy, whileBusy } from "./sections.js";

const TIMEOUT_MS = 40_000;
const FIELD_LABELS = {
  application_version: "application version",
  packages: "c2c packages",
  engines: "header engine",
  overrides: "logging overrides",
  health: "unhealthy",
};

function seconds(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${Math.floor(value / 60)} min`;
  if (value < 172_800) return `${Math.floor(value / 3600)} h ${Math.floor((value % 3600) / 60)} min`;
  return `${Math.floor(value / 86_400)} d ${Math.floor((value % 86_400) / 3600)} h`;
}

function marker(differs) {
  return differs ? [el("span", { class: "replica-marker", "aria-hidden": "true" }, "≠ "), el("span", { class: "visually-hidden" }, "differs: ")] : [];
}

/** A table cell with its label (shown before the value on narrow screens) and the difference marker. */
function cell(label, differs, ...content) {
  return el("td", { "data-label": label, class: differs ? "replica-differs" : null }, marker(differs), content);
}

function healthCell(row) {
  if (row.status !== "ok") return cell("Health", false, el("span", { class: "muted" }, "—"));
  const health = row.health ?? {};
  const healthy = typeof health.status_code === "number" && health.status_code < 400;
  const failing = Array.isArray(health.failing) ? health.failing : [];
  const text = healthy
    ? "✓ Healthy"
    : health.status_code === null || health.status_code === undefined
      ? "✗ Checks timed out"
      : `✗ Unhealthy ${health.status_code}`;
  return cell(
    "Health",
    !healthy,
    el("span", { class: `badge ${healthy ? "ok" : "fail"}` }, text),
    failing.length ? el("span", { class: "replica-failing" }, ` ${failing.join(", ")}`) : null,
  );
}

function listOrDash(items) {
  if (!items.length) return el("span", { class: "muted" }, "none");
  return el("ul", { class: "replica-list" }, items.map((item) => el("li", {}, item)));
}

/** The c2c packages folded: their distinct versions, the list of each package's version on demand. */
function packagesDetails(packages) {
  if (!packages.length) return el("span", { class: "muted" }, "none");
  const versions = [...new Set(packages.map(([, version]) => version))];
  return el(
    "details",
    { class: "replica-packages" },
    // tabindex: focusable anyway; said explicitly so that every tab stop matches `[tabindex]`.
    el("summary", { tabindex: "0" }, `${versions.join(", ")} (${packages.length})`),
    listOrDash(packages.map(([name, version]) => `${name} ${version}`)),
  );
}

function replicaCell(row) {
  const missing = row.status === "missing";
  const status = missing
    ? el("span", { class: "badge fail" }, "✗ Missing")
    : row.status === "error"
      ? el("span", { class: "badge fail" }, `✗ Error: ${row.error ?? "?"}`)
      : null;
  const where = row.hostname ? `${row.hostname}${row.pid !== null && row.pid !== undefined ? ` · pid ${row.pid}` : ""}` : "unknown replica";
  return el(
    "th",
    { scope: "row", "data-label": "Replica" },
    el("span", { class: "replica-host", "data-dynamic": "replica" }, where),
    row.replica_id ? el("span", { class: "replica-id", "data-dynamic": "replica-id" }, row.replica_id) : null,
    status,
  );
}

function renderRow(row) {
  const differences = new Set(Array.isArray(row.differences) ? row.differences : []);
  const answered = row.status === "ok";
  const classes = ["replica-row", `replica-${row.status}`];
  if (differences.size) classes.push("replica-row-differs");
  const packages = Object.entries(row.packages ?? {});
  const overrides = (row.overrides ?? []).map((item) => `${item.name} = ${item.level}`);
  const dash = () => el("span", { class: "muted" }, "—");
  return el(
    "tr",
    { class: classes.join(" "), "data-replica": row.replica_id ?? `${row.hostname ?? "?"}:${row.pid ?? "?"}` },
    replicaCell(row),
    healthCell(row),
    cell("Application", differences.has("application_version"), answered ? (row.application_version ?? "unknown") : dash()),
    cell("Overrides", differences.has("overrides"), answered ? listOrDash(overrides) : dash()),
    cell("Engine", differences.has("engines"), answered ? (row.engines ?? []).join(", ") || "none" : dash()),
    cell("c2c packages", differences.has("packages"), answered ? packagesDetails(packages) : dash()),
    cell(
      "Runtime",
      false,
      answered
        ? el(
            "ul",
            { class: "replica-list" },
            el("li", {}, `Python ${row.python}`),
            el("li", {}, "up ", el("span", { "data-dynamic": "duration" }, seconds(row.uptime))),
            el("li", {}, "answered in ", el("span", { "data-dynamic": "duration" }, seconds(row.response_time))),
          )
        : dash(),
    ),
  );
}

function summary(data) {
  const rows = data.replicas;
  const missing = rows.filter((row) => row.status !== "ok").length;
  const differing = rows.filter((row) => (row.differences ?? []).length).length;
  const fine = missing === 0 && differing === 0;
  const parts = [`${rows.length} replica${rows.length === 1 ? "" : "s"}`];
  if (missing) parts.push(`${missing} not answering`);
  if (differing) parts.push(`${differing} differing`);
  if (fine) parts.push(rows.length > 1 ? "all alike" : "this one");
  return el(
    "div",
    { class: `replica-summary ${fine ? "replica-summary-ok" : "replica-summary-fail"}` },
    el("span", { class: `badge ${fine ? "ok" : "fail"}` }, fine ? "✓ In line" : "≠ Differences"),
    el("span", {}, parts.join(", ")),
    el("span", { class: "replica-elapsed", "data-dynamic": "duration" }, seconds(data.elapsed)),
  );
}

function legend(rows) {
  const fields = new Set(rows.flatMap((row) => row.differences ?? []));
  if (!fields.size) return null;
  const names = [...fields].map((field) => FIELD_LABELS[field] ?? field);
  return el("p", { class: "hint" }, "≠ marks a value that differs from most replicas (", names.join(", "), ").");
}

function renderTable(data) {
  const rows = data.replicas;
  const headers = ["Replica", "Health", "Application", "Overrides", "Engine", "c2c packages", "Runtime"];
  return el(
    "div",
    { class: "table-wrap replica-table-wrap" },
    el(
      "table",
      { class: "replica-table" },
      el("caption", { class: "visually-hidden" }, "Replicas of the service"),
      el("thead", {}, el("tr", {}, headers.map((name) => el("th", { scope: "col" }, name)))),
      el("tbody", {}, rows.map(renderRow)),
    ),
  );
}

/** List the replicas in `region`; an error (a refusal, a time-out, an answer that is not JSON) is shown there. */
async function load(region, button) {
  await whileBusy(button, region, async () => {
    const { response, data } = await getJson("/replicas", TIMEOUT_MS);
    if (!response.ok || !Array.isArray(data?.replicas)) {
      const why = response.ok ? `Unexpected answer (HTTP ${response.status}): no list of replicas` : describeError(response.status, data);
      region.replaceChildren(failure(`The replicas could not be listed: ${why}`));
      return;
    }
    region.replaceChildren(...[summary(data), legend(data.replicas), renderTable(data)].filter(Boolean));
  });
}

function setupReplicas() {
  const form = document.querySelector('form[data-action="replicas"]');
  const region = document.querySelector('[data-output="replicas"]');
  if (!form || !region) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.submitter ?? form.querySelector("button[type=submit]");
    if (!isBusy(button)) load(region, button);
  });
  load(region, form.querySelector("button[type=submit]"));
}

setupReplicas();
