// The API (docs/api.md): every call with the bearer token kept in sessionStorage (none with
// karma serve --insecure-local). A refusal is thrown as a Problem holding the RFC 9457 document.
const TOKEN = 'karma.token';

export class Problem extends Error {
  constructor(status, doc) {
    super(doc.detail || doc.title || 'HTTP ' + status);
    this.status = status;
    this.doc = doc;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN) || '',
  set: (t) => (t ? sessionStorage.setItem(TOKEN, t) : sessionStorage.removeItem(TOKEN)),
};

function headers(extra) {
  const hs = { Accept: 'application/json', ...extra };
  if (token.get()) hs.Authorization = 'Bearer ' + token.get();
  return hs;
}

export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let resp, text;
  try {
    resp = await fetch(path, init);
    text = await resp.text();
  } catch (e) {
    // No answer at all (the server down, the connection cut): a problem the page shows too.
    throw new Problem(0, { title: 'No answer', detail: 'Karma did not answer ' + method + ' ' + path + ': ' + (e.message || e) + '. What is shown may be out of date: try again.' });
  }
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = { detail: text };
  }
  if (!resp.ok) throw new Problem(resp.status, doc || {});
  return { doc, headers: resp.headers };
}

export const get = async (path) => (await call('GET', path)).doc;
export const post = async (path, body) => (await call('POST', path, body)).doc;

// events reads GET /events (server-sent events) with fetch, so that the token goes in a
// header, and calls onEvent(event) for each; it reconnects after a drop with Last-Event-ID.
// Returns a function that stops it.
export function events(onEvent, onState) {
  let stopped = false;
  let last = '';
  let ctl;
  const run = async () => {
    while (!stopped) {
      ctl = new AbortController();
      try {
        const hs = headers({ Accept: 'text/event-stream' });
        if (last) hs['Last-Event-ID'] = last;
        const resp = await fetch('/events', { headers: hs, signal: ctl.signal });
        if (!resp.ok) {
          onState && onState('unavailable (' + resp.status + ')');
          if (resp.status === 404 || resp.status === 401 || resp.status === 403) return;
        } else {
          onState && onState('live');
          await read(resp.body, (id, data) => {
            last = id || last;
            onEvent(data);
          });
        }
      } catch (e) {
        if (stopped) return;
      }
      onState && onState('reconnecting');
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  run();
  return () => {
    stopped = true;
    ctl && ctl.abort();
  };
}

async function read(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let id = '';
  let data = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data) emit(id, JSON.parse(data));
        data = '';
      } else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
  }
}
