// The /c2c page's "Configuration" section: every setting of this replica (GET /c2c/config, admin
// access), filtered as you type, and the unknown C2C__ variables with the closest known name.
//
// Plain ES module under the page's strict CSP: no inline style, no HTML parsing; every value from the
// server goes into the page through text nodes.

import { el, setupSection } from "./sections.js";

const REQUEST_TIMEOUT_MS = 30_000;

/** A setting's value as text: strings as they are, the rest as JSON, unset as "(not set)". */
export function valueText(value) {
  if (value === null || value === undefined) return "(not set)";
  if (typeof value === "string") return value === "" ? '""' : value;
  return JSON.stringify(value);
}

/** Whether a setting matches every word of the filter (name, variable, value, source or description). */
export function matches(setting, words) {
  const haystack = [setting.name, setting.env_var, valueText(setting.value), setting.source, setting.description]
    .join(" ")
    .toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function countText(shown, total) {
  return shown === 0 ? `No setting matches (0 of ${total} settings).` : `${shown} of ${total} settings`;
}

function settingRow(setting) {
  const fromDefault = setting.source === "default";
  return el(
    "tr",
    {},
    el(
      "td",
      { class: "config-name" },
      el("code", {}, String(setting.env_var ?? "")),
      setting.description ? el("span", { class: "config-description" }, String(setting.description)) : null,
    ),
    el(
      "td",
      { class: setting.masked ? "config-value config-masked" : "config-value" },
      el("code", {}, valueText(setting.value)),
      setting.masked ? el("span", { class: "visually-hidden" }, " (masked)") : null,
    ),
    el("td", { class: fromDefault ? "config-source muted" : "config-source" }, fromDefault ? "default" : el("code", {}, String(setting.source))),
  );
}

function unknownList(unknown) {
  if (!unknown.length) return null;
  return el(
    "div",
    { class: "note note-warn config-unknown" },
    el("p", {}, `${unknown.length} C2C__ variable${unknown.length > 1 ? "s are" : " is"} set but read by no setting:`),
    el(
      "ul",
      {},
      unknown.map((item) =>
        el("li", {}, el("code", {}, String(item.name)), item.suggestion ? [": did you mean ", el("code", {}, String(item.suggestion)), "?"] : null),
      ),
    ),
  );
}

function render(region, data) {
  const settings = Array.isArray(data?.settings) ? data.settings : [];
  const unknown = Array.isArray(data?.unknown) ? data.unknown : [];
  const filter = el("input", { id: "config-filter", type: "search", autocomplete: "off", spellcheck: "false", "aria-describedby": "config-count" });
  const count = el("p", { id: "config-count", class: "hint", role: "status", "aria-live": "polite" }, countText(settings.length, settings.length));
  const rows = settings.map((setting) => [setting, settingRow(setting)]);
  const table = el(
    "table",
    { class: "config-table" },
    el("caption", { class: "visually-hidden" }, "Effective configuration"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Setting"), el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Source"))),
    el("tbody", {}, rows.map(([, row]) => row)),
  );
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const [setting, row] of rows) {
      const visible = matches(setting, words);
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = countText(shown, settings.length);
  });
  region.replaceChildren(
    ...[
      unknownList(unknown),
      el("div", { class: "field config-filter" }, el("label", { for: "config-filter" }, "Filter settings"), filter),
      count,
      el("div", { class: "table-wrap config-wrap" }, table),
    ].filter(Boolean),
  );
  return filter;
}

setupSection("config", {
  path: "/config",
  what: "The configuration",
  timeoutMs: REQUEST_TIMEOUT_MS,
  show(region, data) {
    render(region, data);
    return "Configuration loaded.";
  },
});
