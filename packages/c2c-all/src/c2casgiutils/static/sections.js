// What the section modules of the /c2c page share (replicas.js, config.js, audit.js): building
// elements from text (never from HTML), asking the /c2c application for JSON, and the "Show"
// button of a section that loads one JSON document (setupSection).
//
// No side effect at import: index.js runs the page and is loaded once by the page itself; the
// section modules import this one instead.

/** The /c2c application's URL prefix (the page's `data-base`). */
export const BASE = document.body.dataset.base ?? "";

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

/**
 * GET `${BASE}${path}` as JSON with the session cookie, never from a cache, within `timeoutMs`.
 * Returns `{response, data}` (`data` is null when the answer is not JSON); a network error or the
 * timeout (`error.name === "TimeoutError"`) rejects.
 */
export async function getJson(path, timeoutMs) {
  const response = await fetch(`${BASE}${path}`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const data = (response.headers.get("content-type") ?? "").includes("json") ? await response.json() : null;
  return { response, data };
}

/**
 * Wire the "Show" button of a section (`data-action`, `data-status` and `data-output` equal to
 * `name`): a click GETs `path` and passes the JSON to `show(region, data)`, whose return value is
 * announced in the status line. A refusal shows "`what` cannot be shown (HTTP n): detail", a
 * timeout or network error says so; the button is disabled and the region busy meanwhile.
 */
export function setupSection(name, { path, what, show, timeoutMs = 30_000 }) {
  const button = document.querySelector(`button[data-action="${name}"]`);
  const status = document.querySelector(`[data-status="${name}"]`);
  const region = document.querySelector(`[data-output="${name}"]`);
  if (!button || !status || !region) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    region.setAttribute("aria-busy", "true");
    status.textContent = "";
    try {
      const { response, data } = await getJson(path, timeoutMs);
      if (!response.ok) {
        const detail = typeof data?.detail === "string" ? `: ${data.detail}` : "";
        region.replaceChildren(failure(`${what} cannot be shown (HTTP ${response.status})${detail}.`));
        return;
      }
      status.textContent = show(region, data);
    } catch (error) {
      const timeout = error?.name === "TimeoutError";
      region.replaceChildren(
        failure(timeout ? `No answer within ${timeoutMs / 1000} s.` : `The request failed: ${error?.message ?? error}.`),
      );
    } finally {
      button.disabled = false;
      region.removeAttribute("aria-busy");
    }
  });
}
