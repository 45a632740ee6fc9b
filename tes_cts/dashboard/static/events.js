// The API's Server-Sent Events stream read with fetch(), not EventSource, which cannot send an
// Authorization header. It starts after the event `after` when given (else from now) and
// reconnects after the server's `retry:` with Last-Event-ID, so that no change is missed or seen
// twice; it stops for good when the server refuses (4xx) or on `signal`.

import { call } from "./session.js";

export async function follow(url, onEvent, { signal, onStatus = () => {}, after = null } = {}) {
  let last = after || null;
  let retry = 2000;
  while (!signal?.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (last !== null) headers["Last-Event-ID"] = last;
      const response = await call(url, { headers, signal, cache: "no-store" });
      if (response.status >= 400 && response.status < 500) {
        onStatus("off");
        return;
      }
      if (!response.ok) throw new Error(`the event stream answered ${response.status}`);
      onStatus("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parse(block);
          if (event.retry) retry = event.retry;
          if (event.id !== null) last = event.id;
          if (event.data !== null) onEvent(event);
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
    }
    onStatus("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, retry));
  }
}

function parse(block) {
  const event = { id: null, type: "message", data: null, retry: 0 };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "id") event.id = value;
    else if (name === "event") event.type = value;
    else if (name === "data") event.data = event.data === null ? value : `${event.data}\n${value}`;
    else if (name === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
  }
  if (event.data !== null) {
    try {
      event.data = JSON.parse(event.data);
    } catch {
      // not JSON: handed on as text
    }
  }
  return event;
}
