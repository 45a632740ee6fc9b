// Credentials for the page's own requests. Basic credentials the browser has cached go with
// every same-origin request by themselves; a bearer token cannot, so it lives in this tab's
// sessionStorage (never localStorage, never a cookie) and is added to each request here.

const KEY = "tes-cts.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function keepToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

export function authorized(headers = {}) {
  const kept = token();
  return kept ? { ...headers, Authorization: `Bearer ${kept}` } : headers;
}

// A fetch with the tab's credentials; same-origin only, so the token never leaves the service.
// A page opened as http://user:password@host/ has them in its URL, where fetch() refuses them:
// the browser sends the Basic credentials it keeps for the origin instead.
export function call(url, options = {}) {
  const target = new URL(url, location.href);
  target.username = "";
  target.password = "";
  return fetch(target, { ...options, credentials: "same-origin", headers: authorized(options.headers) });
}
