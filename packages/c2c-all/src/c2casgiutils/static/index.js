// The /c2c admin page: health checks, login, request headers and logging levels.
//
// Plain ES module, no dependency, no build step. It runs under a strict CSP (no eval, no inline
// handler or style) and never parses data as HTML: everything from the server (payloads, header
// values, logger names, error messages) goes into the page through textContent.

import { describeError, isBusy, request, whileBusy } from "./sections.js";

export { describeError };

const READ_WRITE = document.body.dataset.readWrite === "true";

// --- DOM helpers ---------------------------------------------------------------------------------

/**
 * Build an element: `h("li", {class: "check ok", data: {dynamic: "duration"}}, "text", child)`.
 * Strings become text nodes; null/undefined/false children are skipped.
 */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "data") {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function output(name) {
  return document.querySelector(`[data-output="${name}"]`);
}

function show(target, ...children) {
  target.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
}

function errorBox(message) {
  return h("div", { class: "error" }, h("span", { "aria-hidden": "true" }, "✗ "), message);
}

function code(text) {
  return h("code", {}, text);
}

// --- Formatting ----------------------------------------------------------------------------------

function significant(value) {
  return String(Number(value.toPrecision(3)));
}

/** A duration in seconds, in the unit that suits it: ns, µs, ms or s. */
export function formatDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  const magnitude = Math.abs(seconds);
  if (magnitude === 0) return "0 s";
  if (magnitude < 1e-6) return `${Math.round(seconds * 1e9)} ns`;
  if (magnitude < 1e-3) return `${significant(seconds * 1e6)} µs`;
  if (magnitude < 1) return `${significant(seconds * 1e3)} ms`;
  return `${significant(seconds)} s`;
}

/** A time left in seconds, for humans: "45 s", "9 min 59 s", "2 h 5 min", "3 d 4 h". */
export function formatRemaining(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  let left = Math.max(0, Math.round(seconds));
  const units = [
    ["d", 86_400],
    ["h", 3_600],
    ["min", 60],
    ["s", 1],
  ];
  const parts = [];
  for (const [unit, size] of units) {
    if (left >= size || (unit === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(left / size)} ${unit}`);
      left %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

function levelBadge(level) {
  const name = String(level ?? "?");
  return h("span", { class: `level level-${name.toLowerCase().replace(/[^a-z]/g, "")}` }, name);
}

function scalarText(value) {
  if (value === null || value === undefined) return "—";
  if (value === "") return '""';
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// --- HTTP ----------------------------------------------------------------------------------------

/**
 * Call an endpoint of the c2c application (a path relative to BASE): `{ok, status, data}` where
 * `data` is the parsed JSON body (or null). Network failures, time-outs and a 2xx answer that is not
 * JSON (a proxy's login page) raise RequestError with a readable message (sections.js `request`).
 */
function call(method, path, options = {}) {
  return request(method, path, options);
}

/** Run `task` with `button` busy (it keeps the focus) and `region` marked busy; show errors in `region`. */
function busy(button, region, task) {
  return whileBusy(button, region, task);
}

function submitter(event) {
  return event.submitter ?? event.currentTarget.querySelector("button[type=submit]");
}

// --- Access (login / logout) ---------------------------------------------------------------------

// Set before the reload that follows a login or a logout: the new page then focuses its access state,
// so that the keyboard and a screen reader start from what changed instead of the top of the page.
const FOCUS_ACCESS = "c2c-focus-access";

function rememberFocus() {
  try {
    window.sessionStorage.setItem(FOCUS_ACCESS, "1");
  } catch {
    // Storage refused (a privacy mode): the new page starts at its top, as without this.
  }
}

function restoreFocus() {
  let wanted = false;
  try {
    wanted = window.sessionStorage.getItem(FOCUS_ACCESS) !== null;
    window.sessionStorage.removeItem(FOCUS_ACCESS);
  } catch {
    return;
  }
  const target = wanted ? document.querySelector("#access .state") ?? document.getElementById("access-title") : null;
  if (target) {
    target.setAttribute("tabindex", "-1");
    target.focus();
  }
}

function setupAccess() {
  restoreFocus();
  const message = output("login");
  const login = document.querySelector('form[data-action="login"]');
  login?.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(submitter(event), message, async () => {
      show(message);
      // The endpoint sets the session cookie and redirects to the index: reload to get the tools.
      // Its answer is the page it redirects to (HTML): no JSON expected; the reload shows what it is.
      const answer = await call("POST", "/auth/login", { form: new FormData(form), expectJson: false });
      if (answer.ok) {
        message.textContent = "Logged in, loading the tools…";
        rememberFocus();
        window.location.reload();
      } else {
        form.elements.secret.value = "";
        form.elements.secret.focus();
        show(message, errorBox(describeError(answer.status, answer.data, { sessionHint: false })));
      }
    });
  });
  const logout = document.querySelector('form[data-action="logout"]');
  logout?.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submitter(event), message, async () => {
      const answer = await call("POST", "/auth/logout");
      if (answer.ok) {
        rememberFocus();
        window.location.reload();
      } else {
        show(message, errorBox(describeError(answer.status, answer.data)));
      }
    });
  });
}

// --- Health checks -------------------------------------------------------------------------------

function renderCheck(entity) {
  const healthy = Number(entity?.status_code) < 400;
  const payload = entity?.payload;
  const hasPayload = payload !== null && payload !== undefined && !(typeof payload === "object" && !Object.keys(payload).length);
  const tags = Array.isArray(entity?.tags) ? entity.tags : [];
  return h(
    "li",
    { class: `check ${healthy ? "ok" : "fail"}` },
    h(
      "div",
      { class: "check-head" },
      h("span", { class: `badge ${healthy ? "ok" : "fail"}` }, healthy ? "✓ OK" : "✗ Failed", ` ${entity?.status_code ?? "?"}`),
      h("span", { class: "check-name" }, String(entity?.name ?? "(unnamed)")),
      h("span", { class: "duration", data: { dynamic: "duration" } }, formatDuration(entity?.time_taken)),
    ),
    tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, tags.map((tag) => h("li", { class: "tag" }, String(tag)))) : null,
    hasPayload ? h("pre", { class: "payload" }, JSON.stringify(payload, null, 2)) : null,
  );
}

/** What an empty report says: which filter selected nothing, or that no check is registered. */
export function noCheckText({ name = "", tags = "" } = {}) {
  const filters = [name ? `names “${name}”` : "", tags ? `tags “${tags}”` : ""].filter(Boolean);
  return filters.length ? `No check matches the ${filters.join(" and ")}.` : "No check is registered.";
}

function renderHealth(status, data, query = {}) {
  const entities = Array.isArray(data?.entities) ? data.entities : null;
  if (entities === null) return [errorBox(describeError(status, data))];
  const healthy = status < 400;
  const failing = entities.filter((entity) => Number(entity?.status_code) >= 400).length;
  // A filter that selects nothing answers 200: not green, a probe with a misspelt name would pass forever.
  const unchecked = healthy && entities.length === 0 && Boolean(query.name || query.tags);
  const state = unchecked ? "warn" : healthy ? "ok" : "fail";
  const verdict = unchecked ? "⚠ Nothing checked" : healthy ? "✓ Healthy" : "✗ Unhealthy";
  const summary = h(
    "div",
    { class: `summary ${state}` },
    h("span", { class: `badge ${state}` }, verdict, ` ${status}`),
    h(
      "span",
      {},
      entities.length === 0
        ? `${noCheckText(query)}${unchecked ? " A probe with this filter passes without checking anything." : ""}`
        : `${entities.length} check${entities.length > 1 ? "s" : ""}, ${
            failing ? `${failing} failing` : entities.length > 1 ? "all passing" : "passing"
          }`,
    ),
    h("span", { class: "duration", data: { dynamic: "duration" } }, formatDuration(data?.time_taken)),
  );
  return [summary, entities.length ? h("ul", { class: "checks" }, entities.map(renderCheck)) : null];
}

function setupHealth() {
  const form = document.querySelector('form[data-action="health"]');
  const region = output("health");
  form?.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = { name: form.elements.name.value.trim(), tags: form.elements.tags.value.trim() };
    busy(submitter(event), region, async () => {
      const answer = await call("GET", "/health_checks", { query });
      show(region, renderHealth(answer.status, answer.data, query));
    });
  });
}

// --- Request headers -----------------------------------------------------------------------------

function keyValueTable(caption, entries) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "kv" },
      h("caption", {}, caption),
      h(
        "tbody",
        {},
        entries.length
          ? entries.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, String(key)), h("td", {}, scalarText(value))))
          : h("tr", {}, h("td", { colspan: "2", class: "muted" }, "(none)")),
      ),
    ),
  );
}

function sortedEntries(object) {
  return Object.entries(object ?? {}).sort(([a], [b]) => a.localeCompare(b));
}

function setupHeaders() {
  const button = document.querySelector('button[data-action="headers"]');
  const region = output("headers");
  const status = document.querySelector('[data-status="headers"]');
  button?.addEventListener("click", () => {
    // An error goes to the status line (a live region), the tables of a previous answer go.
    whileBusy(button, region, async () => {
      status.textContent = "Loading…";
      const answer = await call("GET", "/headers/");
      if (!answer.ok) {
        show(region);
        show(status, errorBox(describeError(answer.status, answer.data)));
        return;
      }
      const info = answer.data?.client_info ?? {};
      const headers = sortedEntries(answer.data?.headers);
      show(
        region,
        keyValueTable("URL", [
          ["URL", info.url_str],
          ["Base URL", info.base_url_str],
          ...Object.entries(info.url ?? {}).filter(([key]) => key !== "query" && key !== "fragment"),
        ]),
        keyValueTable("Query parameters", sortedEntries(info.query_params)),
        keyValueTable("Path parameters", sortedEntries(info.path_params)),
        keyValueTable("Headers", headers),
        keyValueTable("ASGI scope", sortedEntries(answer.data?.scope)),
      );
      status.textContent = `${headers.length} headers received by the application.`;
    }, status);
  });
}

// --- Logging -------------------------------------------------------------------------------------

function levelLine(data) {
  return h(
    "p",
    { class: "level-line" },
    code(String(data?.name ?? "?")),
    " level ",
    levelBadge(data?.level),
    ", effective ",
    levelBadge(data?.effective_level),
    // NOTSET is also what a misspelled or never-used logger answers: say what it means.
    data?.level === "NOTSET"
      ? h(
          "span",
          { class: "hint" },
          " (no level of its own: it logs at its nearest configured ancestor's, or the root's; ",
          "a name no code uses answers the same, so check the spelling)",
        )
      : null,
  );
}

function renderReplicas(replicas) {
  if (!Array.isArray(replicas) || replicas.length === 0) {
    return h("p", { class: "muted" }, "No replica answered.");
  }
  return h(
    "ul",
    { class: "replicas", "aria-label": "Answers of the replicas" },
    replicas.map((replica) => {
      if (replica?.error !== undefined || !replica?.payload) {
        return h(
          "li",
          { class: "fail" },
          h("span", { class: "badge fail" }, "✗ ", String(replica?.error ?? "error")),
          " ",
          String(replica?.detail ?? JSON.stringify(replica)),
        );
      }
      return h(
        "li",
        { class: "ok" },
        h("span", { class: "replica-id", data: { dynamic: "replica" } }, `${replica.hostname ?? "?"} · pid ${replica.pid ?? "?"}`),
        " ",
        levelBadge(replica.payload.level),
        " effective ",
        levelBadge(replica.payload.effective_level),
      );
    }),
  );
}

async function refreshOverrides(button) {
  const region = output("overrides");
  if (!region) return;
  await busy(button, region, async () => {
    const answer = await call("GET", "/logging/overrides");
    if (!answer.ok) {
      show(region, errorBox(describeError(answer.status, answer.data)));
      return;
    }
    const overrides = Array.isArray(answer.data?.overrides) ? answer.data.overrides : [];
    if (overrides.length === 0) {
      show(region, h("p", { class: "muted" }, "No override: every logger has its configured level."));
      return;
    }
    show(
      region,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "overrides" },
          h("caption", { class: "visually-hidden" }, "Logging level overrides"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Logger"),
              h("th", { scope: "col" }, "Level"),
              h("th", { scope: "col" }, "Reverts in"),
              READ_WRITE ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null,
            ),
          ),
          h("tbody", {}, overrides.map(renderOverride)),
        ),
      ),
    );
  });
}

function renderOverride(override) {
  const name = String(override?.name ?? "");
  const expires = override?.expires_in;
  let action = null;
  if (READ_WRITE) {
    const remove = h("button", { type: "button", class: "secondary small danger", "aria-label": `Delete the override of ${name}` }, "Delete");
    remove.addEventListener("click", () => deleteOverride(name, remove));
    action = h("td", { class: "actions" }, remove);
  }
  return h(
    "tr",
    {},
    h("td", {}, code(name)),
    h("td", {}, levelBadge(override?.level)),
    h(
      "td",
      expires === null || expires === undefined ? { class: "muted" } : { data: { dynamic: "expires" } },
      expires === null || expires === undefined ? "until deleted" : formatRemaining(expires),
    ),
    action,
  );
}

async function deleteOverride(name, button) {
  const region = output("overrides");
  let answer = null;
  await busy(button, region, async () => {
    answer = await call("DELETE", "/logging/level", { query: { name } });
    if (!answer.ok) show(region, errorBox(describeError(answer.status, answer.data)));
  });
  if (answer?.ok) await refreshOverrides();
  // The Delete button is gone with the table it was in: keep the keyboard focus in the section.
  if (!button.isConnected) document.querySelector('button[data-action="overrides"]')?.focus();
  if (answer?.ok) {
    region.prepend(
      h(
        "p",
        { class: "notice" },
        "Deleted the override of ",
        code(name),
        ": now ",
        levelBadge(answer.data?.level),
        ", effective ",
        levelBadge(answer.data?.effective_level),
        ".",
      ),
    );
  }
}

function setupLogging() {
  const getForm = document.querySelector('form[data-action="get-level"]');
  getForm?.addEventListener("submit", (event) => {
    event.preventDefault();
    const region = output("get-level");
    busy(submitter(event), region, async () => {
      const answer = await call("GET", "/logging/level", { query: { name: getForm.elements.name.value.trim() } });
      show(region, answer.ok ? levelLine(answer.data) : errorBox(describeError(answer.status, answer.data)));
    });
  });

  const setForm = document.querySelector('form[data-action="set-level"]');
  // A value the browser refuses (a duration under its minimum, no logger name) stops the submission
  // before the handler below: the answer of a previous submission would stay, as if it were this one's.
  setForm?.addEventListener("invalid", () => show(output("set-level")), true);
  setForm?.addEventListener("submit", (event) => {
    event.preventDefault();
    const region = output("set-level");
    const minutes = setForm.elements.duration.value.trim();
    const change = { name: setForm.elements.name.value.trim(), level: setForm.elements.level.value };
    busy(submitter(event), region, async () => {
      if (minutes !== "") {
        const seconds = Math.round(Number(minutes) * 60);
        if (!Number.isFinite(seconds) || seconds < 1) {
          show(region, errorBox("The duration is a number of minutes (at least 0.1), or empty for no revert."));
          return;
        }
        change.duration = seconds;
      }
      const answer = await call("POST", "/logging/level", { json: change, query: { replicas: "true" } });
      if (!answer.ok) {
        show(region, errorBox(describeError(answer.status, answer.data)));
        return;
      }
      const reverts = answer.data?.duration
        ? h("span", {}, ", reverts in ", h("span", { data: { dynamic: "expires" } }, formatRemaining(answer.data.duration)))
        : ", until the override is deleted";
      show(
        region,
        h("p", { class: "notice" }, "Applied: ", code(String(answer.data?.name ?? change.name)), " ", levelBadge(answer.data?.level), reverts, "."),
        renderReplicas(answer.data?.replicas),
      );
      await refreshOverrides();
    });
  });

  const refresh = document.querySelector('button[data-action="overrides"]');
  refresh?.addEventListener("click", () => {
    if (!isBusy(refresh)) refreshOverrides(refresh);
  });
  if (refresh) refreshOverrides(refresh);
}

setupAccess();
setupHealth();
setupHeaders();
setupLogging();
