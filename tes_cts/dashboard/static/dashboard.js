// The dashboard's behaviour over the pages the server renders: live updates from the event
// stream (the changed parts of the page fetched again and swapped in), the cancel button, paged
// full logs, and signing in with a bearer token (pages then fetched with it and swapped in, since
// a navigation cannot carry the token). Without this script the pages still read as they are.

import { call, forgetToken, keepToken, token } from "./session.js";
import { follow } from "./events.js";
import { showLogPage } from "./logs.js";

const REFRESH_DELAY_MS = 300; // a burst of events is one refresh
const LIVE_LABELS = { live: "live", reconnecting: "reconnecting…", off: "not live" };

let stream = null; // the AbortController of the page's event stream
let timer = null;
let refreshing = false;
let again = false;

const main = () => document.getElementById("main");
const api = () => document.body.dataset.api;

function notice(text, kind = "info") {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

async function fetchPage(url) {
  const response = await call(url, { headers: { Accept: "text/html" }, cache: "no-store" });
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  return { response, page };
}

// Token sign-in: the page fetched with the token replaces the sign-in page (or the page before).
async function navigate(url, { push = false } = {}) {
  let fetched;
  try {
    fetched = await fetchPage(url);
  } catch {
    notice("The service could not be reached.", "error");
    return;
  }
  const { response, page } = fetched;
  const refused = response.status === 401 && token();
  if (refused) forgetToken();
  document.title = page.title;
  const nodes = [...page.body.childNodes]; // a copy: adopting a node takes it out of the live list
  document.body.replaceChildren(...nodes.map((node) => document.adoptNode(node)));
  if (push) history.pushState(null, "", url);
  if (refused) notice("The token was not accepted.", "error");
  start();
}

function start() {
  stream?.abort();
  stream = null;
  document.getElementById("forget-token").hidden = !token();
  const page = main().dataset.page;
  if (page === "sign-in") {
    document.getElementById("token")?.focus();
  } else if (page === "tasks") {
    live(`${api()}/events`);
  } else if (page === "task") {
    live(`${api()}/events?task_id=${encodeURIComponent(main().dataset.task)}`);
  }
}

function live(url) {
  const indicator = document.getElementById("live");
  const controller = new AbortController();
  stream = controller;
  const onStatus = (status) => {
    if (controller.signal.aborted) return;
    indicator.hidden = false;
    indicator.dataset.status = status;
    indicator.textContent = LIVE_LABELS[status];
  };
  // From the last event the server had when it rendered the page: nothing in between is missed.
  follow(url, () => scheduleRefresh(), { signal: controller.signal, onStatus, after: main().dataset.lastEvent });
}

function scheduleRefresh() {
  if (refreshing) {
    again = true;
    return;
  }
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    refreshing = true;
    try {
      await refresh();
    } catch {
      // the next event tries again
    } finally {
      refreshing = false;
    }
    if (again) {
      again = false;
      scheduleRefresh();
    }
  }, REFRESH_DELAY_MS);
}

// The parts of the page that change (`data-live`), rendered again by the server.
async function refresh() {
  const shown = main();
  const { response, page } = await fetchPage(location.href);
  if (!response.ok || main() !== shown) return;
  for (const fresh of page.querySelectorAll("[data-live][id]")) {
    document.getElementById(fresh.id)?.replaceWith(document.adoptNode(fresh));
  }
}

async function cancel(button) {
  if (!confirm(`Cancel the task ${button.dataset.name}?`)) return;
  button.disabled = true;
  let response;
  try {
    response = await call(`${api()}/tasks/${encodeURIComponent(button.dataset.cancel)}:cancel`, { method: "POST" });
  } catch {
    response = null;
  }
  if (response?.ok) {
    notice("Cancel requested.");
    scheduleRefresh();
    return;
  }
  const body = response ? await response.json().catch(() => ({})) : {};
  notice(`The cancel failed: ${body.detail || (response ? response.status : "the service could not be reached")}`, "error");
  button.disabled = false;
}

function inDashboard(link) {
  const root = new URL(document.querySelector(".brand").href).pathname;
  return link.origin === location.origin && link.pathname.startsWith(root) && !link.pathname.startsWith(`${root}/static/`);
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button, a");
  if (!target) return;
  if (target.matches("[data-cancel]")) {
    cancel(target);
  } else if (target.matches("[data-log-page]")) {
    showLogPage(target.closest(".log"), target.dataset.logPage);
  } else if (target.id === "forget-token") {
    forgetToken();
    location.reload();
  } else if (target.tagName === "A" && token() && inDashboard(target) && event.button === 0
             && !(event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)) {
    event.preventDefault();
    navigate(target.href, { push: true });
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id === "token-form") {
    event.preventDefault();
    keepToken(form.elements.token.value.trim());
    navigate(location.href);
  } else if (token() && form.method === "get") {
    event.preventDefault();
    const url = new URL(form.action);
    for (const [name, value] of new FormData(form)) if (value) url.searchParams.append(name, value);
    navigate(url.href, { push: true });
  }
});

window.addEventListener("popstate", () => {
  if (token()) navigate(location.href);
});

if (main().dataset.page === "sign-in" && token()) navigate(location.href);
else start();
