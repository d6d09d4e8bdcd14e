// The /c2c page's "Audit" section: the last admin actions of every replica, newest first
// (GET /c2c/audit, admin access): level set or deleted, logins, logouts, refused logins per minute.
//
// Plain ES module under the page's strict CSP: no inline style, no HTML parsing; every value from the
// server goes into the page through text nodes.

import { el, setupSection } from "./sections.js";

const REQUEST_TIMEOUT_MS = 30_000;
const ACTIONS = {
  level_set: "Level set",
  level_deleted: "Level deleted",
  login: "Login",
  logout: "Logout",
  login_refused: "Refused logins",
};

/** A record's time (seconds since the epoch) as `YYYY-MM-DD HH:MM:SS UTC`. */
export function timeText(seconds) {
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return "?";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function isoTime(seconds) {
  const date = new Date(Number(seconds) * 1000);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** `hostname (pid)`, or what is known of it. */
export function replicaText(replica) {
  const host = replica?.hostname ?? "unknown host";
  return replica?.pid === null || replica?.pid === undefined ? host : `${host} (${replica.pid})`;
}

/** What a record did, in words, from its action and details. */
export function detailsText(entry) {
  const details = entry?.details && typeof entry.details === "object" ? entry.details : {};
  switch (entry?.action) {
    case "level_set": {
      const duration = typeof details.duration === "number" ? ` for ${details.duration} s` : "";
      return `${details.name ?? "?"} → ${details.level ?? "?"}${duration}`;
    }
    case "level_deleted":
      return `${details.name ?? "?"} back to its level`;
    case "login_refused": {
      const count = Number(details.count ?? 0);
      return `${count} refused in ${details.window_seconds ?? 60} s (${details.budget ?? "?"})`;
    }
    case "login":
    case "logout":
      return details.method ? `with ${details.method}` : "";
    default:
      return Object.entries(details)
        .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
        .join(", ");
  }
}

function replicaList(replicas) {
  const missing = replicas.filter((replica) => replica.status !== "ok");
  const summary = missing.length
    ? `${replicas.length} replica${replicas.length > 1 ? "s" : ""}, ${missing.length} not answering:`
    : `${replicas.length} replica${replicas.length > 1 ? "s" : ""} answered.`;
  return el(
    "div",
    { class: missing.length ? "audit-replicas note note-warn" : "audit-replicas" },
    el("p", {}, summary),
    missing.length
      ? el(
          "ul",
          {},
          missing.map((replica) =>
            el("li", {}, el("span", { class: "badge fail" }, replica.status === "error" ? "error" : "missing"), " ", replicaText(replica)),
          ),
        )
      : null,
  );
}

function entryRow(entry) {
  return el(
    "tr",
    {},
    el("td", { class: "audit-time", "data-label": "When" }, el("time", { datetime: isoTime(entry.time) }, timeText(entry.time))),
    el("td", { class: "audit-replica", "data-label": "Replica" }, replicaText(entry)),
    el("td", { class: "audit-who", "data-label": "Who" }, String(entry.who ?? "")),
    el("td", { class: "audit-action", "data-label": "Action" }, ACTIONS[entry.action] ?? String(entry.action ?? "")),
    el("td", { class: "audit-client", "data-label": "Client" }, String(entry.client ?? "")),
    el("td", { class: "audit-details", "data-label": "Details" }, detailsText(entry)),
  );
}

function render(region, data) {
  const entries = Array.isArray(data?.entries) ? data.entries : [];
  const replicas = Array.isArray(data?.replicas) ? data.replicas : [];
  const table = entries.length
    ? el(
        "div",
        { class: "table-wrap audit-wrap" },
        el(
          "table",
          { class: "audit-table" },
          el("caption", { class: "visually-hidden" }, "Admin actions of every replica, newest first"),
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ["When", "Replica", "Who", "Action", "Client", "Details"].map((title) => el("th", { scope: "col" }, title)),
            ),
          ),
          el("tbody", {}, entries.map(entryRow)),
        ),
      )
    : el("p", { class: "hint" }, "No admin action recorded yet.");
  region.replaceChildren(replicaList(replicas), table);
  return entries.length;
}

setupSection("audit", {
  path: "/audit",
  what: "The audit trail",
  timeoutMs: REQUEST_TIMEOUT_MS,
  show(region, data) {
    const count = render(region, data);
    return `Audit trail loaded: ${count} action${count === 1 ? "" : "s"}.`;
  },
});
