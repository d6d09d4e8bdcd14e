// What the modules of the /c2c page share (index.js, replicas.js, config.js, audit.js): building
// elements from text (never from HTML), asking the /c2c application for JSON (a 2xx answer that is
// not JSON is an error, never a success), describing an error answer, running a tool's request with
// its button marked busy (aria-disabled: it keeps the keyboard focus), and the "Show" button of a
// section that loads one JSON document (setupSection).
//
// No side effect at import: index.js runs the page and is loaded once by the page itself; the
// section modules import this one instead.

/** The /c2c application's URL prefix (the page's `data-base`). */
export const BASE = document.body.dataset.base ?? "";

const REQUEST_TIMEOUT_MS = 30_000;
const STATUS_LABELS = {
  400: "Bad request",
  401: "Not logged in",
  403: "Access denied",
  404: "Not found",
  413: "Too large",
  422: "Invalid input",
  429: "Too many attempts",
  500: "Server error",
  503: "Unavailable",
};

/** Build an element: `el("td", {class: "x"}, "text", child)`; null/undefined/false attributes and children are skipped. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An error box: a cross (hidden from screen readers) and the message. */
export function failure(message) {
  return el("div", { class: "error" }, el("span", { "aria-hidden": "true" }, "✗ "), message);
}

/** A failed request (network, time-out, an answer that is not the application's): its message is for people. */
export class RequestError extends Error {}

/**
 * Call an endpoint of the c2c application (a path relative to BASE) and return `{ok, status, data}`
 * where `data` is the parsed JSON body (or null for an error answer that is not JSON).
 *
 * A 2xx answer must be JSON (`expectJson: false` accepts anything, for the login form whose answer
 * is the redirected page): another body (an SSO proxy's HTML login page, followed by fetch) is no
 * success and raises RequestError. So do network failures and time-outs.
 */
export async function request(method, path, { query, json, form, timeoutMs = REQUEST_TIMEOUT_MS, expectJson = true } = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.append(key, value);
  }
  const search = params.toString();
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(`${BASE}${path}${search ? `?${search}` : ""}`, {
      method,
      headers,
      body,
      credentials: "same-origin",
      cache: "no-store",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    if (error?.name === "TimeoutError") {
      throw new RequestError(`No answer within ${timeoutMs / 1000} s.`);
    }
    throw new RequestError(`The request failed: ${error?.message ?? error}. Is the service reachable?`);
  }
  const type = (response.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  let data = null;
  let parsed = false;
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      data = await response.json();
      parsed = true;
    } catch {
      data = null;
    }
  }
  if (response.ok && !parsed && expectJson) {
    throw new RequestError(
      `Unexpected answer (HTTP ${response.status}, ${type || "no content type"}): not the c2c application's JSON; ` +
        "a proxy's login page? Reload the page.",
    );
  }
  return { ok: response.ok, status: response.status, data };
}

/**
 * GET `path` as JSON within `timeoutMs`: `{response: {ok, status}, data}`. Rejects with RequestError
 * on a network error, the time-out, or a 2xx answer that is not JSON.
 */
export async function getJson(path, timeoutMs = REQUEST_TIMEOUT_MS) {
  const { ok, status, data } = await request("GET", path, { timeoutMs });
  return { response: { ok, status }, data };
}

/** A readable message for an error answer (`{"detail": ...}` from FastAPI, or anything else). */
export function describeError(status, data, { sessionHint = true } = {}) {
  let detail = data?.detail ?? data?.error ?? data?.message;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: [{loc: ["body", "duration"], msg: "..."}]
    detail = detail
      .map((item) => {
        const where = (item?.loc ?? []).filter((part) => part !== "body" && part !== "query").join(".");
        // pydantic prefixes a validator's own message with "Value error, ": not for people.
        const msg = typeof item?.msg === "string" ? item.msg.replace(/^Value error, /, "") : item?.msg;
        return where ? `${where}: ${msg ?? ""}` : String(msg ?? JSON.stringify(item));
      })
      .join("; ");
  } else if (detail !== undefined && detail !== null && typeof detail === "object") {
    detail = JSON.stringify(detail);
  }
  const label = STATUS_LABELS[status] ?? (status >= 500 ? "Server error" : "Error");
  let message = `${label} (HTTP ${status})`;
  if (detail) message += `: ${detail}`;
  if (sessionHint && (status === 401 || status === 403)) {
    message += ". Reload the page and log in again if your session expired.";
  }
  return message;
}

/** Whether the request of this button is running (then its clicks are ignored). */
export function isBusy(button) {
  return button?.getAttribute("aria-disabled") === "true";
}

/**
 * Run `task` with `button` marked busy and `region` aria-busy; an error (thrown) is shown in
 * `region` (`errorRegion` if given). The button is `aria-disabled`, not `disabled`: a disabled
 * button loses the keyboard focus (to the body), this one keeps it; its clicks are ignored meanwhile.
 */
export async function whileBusy(button, region, task, errorRegion = region) {
  if (isBusy(button)) return;
  button?.setAttribute("aria-disabled", "true");
  region?.setAttribute("aria-busy", "true");
  try {
    await task();
  } catch (error) {
    if (!(error instanceof RequestError)) console.warn(error);
    if (errorRegion) {
      if (errorRegion !== region) region?.replaceChildren();
      errorRegion.replaceChildren(failure(error?.message ?? String(error)));
    }
  } finally {
    button?.removeAttribute("aria-disabled");
    region?.removeAttribute("aria-busy");
  }
}

/**
 * Wire the "Show" button of a section (`data-action`, `data-status` and `data-output` equal to
 * `name`): a click GETs `path` and passes the JSON to `show(region, data)`, whose return value is
 * announced in the status line. A refusal ("`what` cannot be shown: " and describeError's message),
 * a timeout, a network error or an answer that is not JSON goes to the status line (a live region)
 * and empties the region; the button is busy (it keeps the focus) and the region aria-busy meanwhile.
 */
export function setupSection(name, { path, what, show, timeoutMs = REQUEST_TIMEOUT_MS }) {
  const button = document.querySelector(`button[data-action="${name}"]`);
  const status = document.querySelector(`[data-status="${name}"]`);
  const region = document.querySelector(`[data-output="${name}"]`);
  if (!button || !status || !region) return;
  button.addEventListener("click", () => {
    if (isBusy(button)) return;
    whileBusy(
      button,
      region,
      async () => {
        status.textContent = "Loading…";
        const { response, data } = await getJson(path, timeoutMs);
        if (!response.ok) {
          region.replaceChildren();
          status.replaceChildren(failure(`${what} cannot be shown: ${describeError(response.status, data)}`));
          return;
        }
        status.textContent = show(region, data);
      },
      status,
    );
  });
}
