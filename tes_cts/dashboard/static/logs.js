// Paged full logs: an executor's whole stdout or stderr from the API's log endpoint, a page at a
// time (the answer's X-Log-Size gives the log's size, so the last page can be asked for). Where
// the endpoint or the log is not there (404, or a server without the endpoint), the tail the
// task log keeps, rendered with the page, stays as it is.

import { call } from "./session.js";

const PAGE_BYTES = 64 * 1024;
const TAIL = "this is the end the task log keeps";

function wantedOffset(box, which) {
  const offset = Number(box.dataset.offset || 0);
  const size = Number(box.dataset.size || 0);
  if (which === "next") return offset + PAGE_BYTES;
  if (which === "previous") return Math.max(offset - PAGE_BYTES, 0);
  if (which === "last") return size > 0 ? Math.floor((size - 1) / PAGE_BYTES) * PAGE_BYTES : 0;
  return 0;
}

export async function showLogPage(box, which) {
  const offset = wantedOffset(box, which);
  const range = box.querySelector(".log-range");
  const button = (name) => box.querySelector(`[data-log-page="${name}"]`);
  let response;
  try {
    response = await call(`${box.dataset.log}?offset=${offset}&length=${PAGE_BYTES}`, { headers: { Accept: "text/plain" } });
  } catch {
    range.textContent = `the full log could not be fetched; ${TAIL}`;
    return;
  }
  if (!response.ok) {
    range.textContent = response.status === 404
      ? `no full log on the server for this run; ${TAIL}`
      : `the full log could not be fetched (${response.status}); ${TAIL}`;
    button("first").hidden = true;
    return;
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const header = response.headers.get("X-Log-Size");
  const size = header === null ? null : Number(header);
  box.dataset.offset = String(offset);
  box.dataset.size = String(size ?? 0);
  box.querySelector("pre").textContent = new TextDecoder().decode(bytes);
  const of = size === null ? "" : ` of ${size.toLocaleString()}`;
  range.textContent = bytes.length
    ? `full log, bytes ${offset.toLocaleString()} to ${(offset + bytes.length - 1).toLocaleString()}${of}`
    : `full log: no bytes from ${offset.toLocaleString()}${of}`;
  const more = size === null ? bytes.length === PAGE_BYTES : offset + bytes.length < size;
  button("first").textContent = "First page";
  button("previous").hidden = offset === 0;
  button("next").hidden = !more;
  button("last").hidden = size === null || !more;
}
