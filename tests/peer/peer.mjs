// A stock PouchDB 9 peer for the Wasl tests: read ONE JSON script on stdin, run it, print ONE JSON result.
//
// Script: {"steps": [...], "remotes": {alias: url}?, "step_timeout_ms": 60000?, "snapshot": [db refs]?,
//          "snapshot_options": {...}?, "trace": false?}
// A db ref is a local name (an in-memory PouchDB, created on first use), a remote alias, or an http(s) URL
// (PouchDB's http adapter; credentials may sit in the URL). Steps ("db" defaults to "local"):
//   {"op":"put", "db", "doc", "options"?}                {"op":"bulkDocs", "db", "docs", "new_edits"?: false}
//   {"op":"remove", "db", "id", "rev"?}                  (rev defaults to the current winner)
//   {"op":"update", "db", "id", "set": {...}, "rev"?}    (get the winner, assign "set", put)
//   {"op":"putAttachment", "db", "id", "rev"?, "name", "data": base64, "content_type"}
//   {"op":"get", "db", "id", "options"?}                 {"op":"allDocs", "db", "options"?}
//   {"op":"changes", "db", "options"?}                   {"op":"info", "db"}     {"op":"destroy", "db"}
//   {"op":"replicate", "source", "target", "options"?, "until"?, "background"?}
//   {"op":"sync", "source", "target", "options"?, "until"?, "background"?}
//       live runs need "until" ({"db","id","rev"?,"deleted"?,"field"?,"value"?}, or a list of them: poll
//       until it holds, then cancel)
//       or "background": true + "as": handle, then
//   {"op":"wait", "handle", "event": "paused"|"active"}  (at once if that was the last such event)
//   {"op":"stop", "handle", "until"?}                    (wait for "until", cancel, return the result)
//   {"op":"touch", "path", "text"?}                      write a file: a signal for the Python side
//   {"op":"sleep", "ms"}                                 {"op":"merge", "fn", "args"}  (pouchdb-merge.<fn>)
// Any step may carry "as" (name its result), "may_fail" (record the error, also as {"error"} under "as",
// and go on), "timeout_ms".
// Result: {"ok", "steps": [{"op","result"|"error","ms","requests","http"?}], "results": {as: result},
//          "dbs": {local name: allDocs({include_docs, conflicts})}, "error"?, "http_errors", "warnings"}
// "trace": true adds each step's requests ({method, url, status}); "http_errors" lists failed requests
// with their bodies (minus the 404s every first run makes).
// A replication result is {ok, status, docs_read, docs_written, doc_write_failures, errors, last_seq, denied,
// requests}; a sync result is {ok, status, denied, push: {...}, pull: {...}}.
import {readFileSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-replication'));
const pouchdbMerge = require('pouchdb-merge');
// The very fetch the http adapter would use (node-fetch + fetch-cookie), resolved from the adapter itself, so
// wrapping it to count requests changes nothing else.
const {fetch: pouchFetch} = createRequire(require.resolve('pouchdb-adapter-http'))('pouchdb-fetch');

const DEFAULT_STEP_TIMEOUT_MS = 60000;
const REPLICATION_OPS = new Set(['replicate', 'sync', 'stop']);
const POLL_MS = 50;

class StepError extends Error {
  constructor(name, message, status) {
    super(message);
    this.name = name;
    this.status = status;
  }
}

// ---------------------------------------------------------------- HTTP accounting
const http = {count: 0, log: [], errors: [], trace: false};
const warnings = [];

/** Count every request PouchDB makes and keep the failed ones, so a test can show what the server refused. */
async function countingFetch(url, options = {}) {
  http.count += 1;
  const method = options.method || 'GET';
  const path = redact(url);
  const response = await pouchFetch(url, options);
  if (http.trace) http.log.push({method, url: path, status: response.status});
  if (response.status >= 400 && http.errors.length < 50 && !normalMiss(method, path, response.status)) {
    // clone() so PouchDB still reads the body; error bodies are small, so the tee cannot stall.
    const body = await response.clone().text().catch(() => '');
    const sent = typeof options.body === 'string' ? options.body.slice(0, 500) : undefined;
    http.errors.push({method, url: path, status: response.status, body: body.slice(0, 1000), sent});
  }
  return response;
}

/** A 404 PouchDB expects on every first run: the setup probe of a new db, or a checkpoint not written yet. */
function normalMiss(method, url, status) {
  return status === 404 && method === 'GET' && (/\/$/.test(url) || /\/_local\//.test(url));
}

function redact(url) {
  return String(url).replace(/\/\/[^/@]*@/, '//');
}

// ---------------------------------------------------------------- databases
const locals = new Map();
const remotes = new Map();
let aliases = {};

function isUrl(ref) {
  return /^https?:\/\//.test(ref);
}

function db(ref = 'local') {
  const url = aliases[ref] || ref;
  if (isUrl(url)) {
    if (!remotes.has(url)) remotes.set(url, new PouchDB(url, {fetch: countingFetch}));
    return remotes.get(url);
  }
  if (!locals.has(ref)) locals.set(ref, new PouchDB(ref, {adapter: 'memory'}));
  return locals.get(ref);
}

// ---------------------------------------------------------------- JSON
/** The JSON face of an error: PouchDB's name/status/message/reason, plus a short stack for a crash. */
function errorJson(err) {
  if (!err || typeof err !== 'object') return {name: 'error', message: String(err)};
  const out = {name: err.name, status: err.status, message: err.message};
  for (const key of ['reason', 'id', 'docId', 'code']) {
    if (err[key] !== undefined) out[key] = err[key];
  }
  // PouchError sets error=true; only a string (a server's "error" field) says something.
  if (typeof err.error === 'string') out.error = err.error;
  if (!out.status && !out.reason && err.stack) {
    out.stack = String(err.stack).split('\n').slice(0, 4).join('\n');
  }
  return out;
}

function replacer(key, value) {
  if (value instanceof Error) return errorJson(value);
  // Buffers (attachments read with binary:true) travel as base64, like CouchDB's inline attachments.
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return Buffer.from(value.data).toString('base64');
  }
  return value;
}

// ---------------------------------------------------------------- replication
const handles = new Map();  // background replications by name
const started = [];  // every replication, cancelled at the end so node can exit

function replicationSummary(res, denied, requests) {
  if (!res) return {ok: false, status: 'unknown', denied, requests};
  return {
    ok: res.ok, status: res.status, docs_read: res.docs_read, docs_written: res.docs_written,
    doc_write_failures: res.doc_write_failures, errors: (res.errors || []).map(errorJson),
    last_seq: res.last_seq, start_time: res.start_time, end_time: res.end_time, denied, requests,
  };
}

/** Start a replication or sync and wire the events a test wants counted. */
function startReplication(step) {
  const source = db(step.source);
  const target = db(step.target);
  const options = step.options || {};
  const rep = step.op === 'sync'
    ? PouchDB.sync(source, target, options)
    : PouchDB.replicate(source, target, options);
  const handle = {
    op: step.op, rep, denied: {all: 0, push: 0, pull: 0}, events: {}, requestsAtStart: http.count,
    done: null, result: null, error: null,
  };
  started.push(handle);
  rep.on('denied', () => { handle.denied.all += 1; });
  if (step.op === 'sync') {
    // The sync object re-emits both directions' events; count them per direction too.
    rep.push.on('denied', () => { handle.denied.push += 1; });
    rep.pull.on('denied', () => { handle.denied.pull += 1; });
  }
  for (const event of ['paused', 'active', 'change', 'error']) {
    rep.on(event, (arg) => {
      handle.events[event] = (handle.events[event] || 0) + 1;
      handle.last = event === 'paused' || event === 'active' ? event : handle.last;
      if (event === 'paused' && arg) handle.pausedError = errorJson(arg);
      for (const waiter of handle.waiters || []) waiter(event);
    });
  }
  handle.done = new Promise((resolve) => {
    rep.then((res) => { handle.result = res; resolve(); }, (err) => { handle.error = err; resolve(); });
  });
  return handle;
}

function summarize(handle) {
  const requests = http.count - handle.requestsAtStart;
  const res = handle.result || (handle.error && handle.error.result) || null;
  let out;
  if (handle.op === 'sync') {
    const push = res && res.push;
    const pull = res && res.pull;
    out = {
      ok: !handle.error && !!res, status: res ? (res.status || (push && push.status)) : 'aborted',
      denied: handle.denied.all, requests,
      push: replicationSummary(push, handle.denied.push, undefined),
      pull: replicationSummary(pull, handle.denied.pull, undefined),
    };
  } else {
    out = replicationSummary(res, handle.denied.all, requests);
    if (!res) out.status = 'aborted';
  }
  out.events = handle.events;
  if (handle.pausedError) out.paused_error = handle.pausedError;
  if (handle.error) {
    out.ok = false;
    out.error = errorJson(handle.error);
  }
  return out;
}

async function docMatches(cond) {
  try {
    const doc = await db(cond.db).get(cond.id, cond.rev ? {rev: cond.rev} : {});
    if (cond.deleted) return false;
    return !cond.field || JSON.stringify(doc[cond.field]) === JSON.stringify(cond.value);
  } catch (err) {
    // A doc whose winner is deleted answers 404 "deleted"; that is the arrival a deletion test waits for.
    return !!cond.deleted && err.status === 404 && err.reason === 'deleted';
  }
}

async function allMatch(conds) {
  for (const cond of conds) {
    if (!await docMatches(cond)) return false;
  }
  return true;
}

async function waitUntil(until, handle) {
  const conds = Array.isArray(until) ? until : [until];
  for (;;) {
    if (await allMatch(conds)) return;
    if (handle && (handle.result || handle.error)) {
      const why = handle.error ? `: ${handle.error.message}` : '';
      const what = JSON.stringify(until);
      throw new StepError('replication_ended', `replication ended before ${what} held${why}`);
    }
    await sleep(POLL_MS);
  }
}

async function stop(handle, until) {
  if (until) await waitUntil(until, handle);
  handle.rep.cancel();
  await handle.done;
  return summarize(handle);
}

function waitEvent(handle, event) {
  if (handle.last === event) return Promise.resolve({event});
  return new Promise((resolve, reject) => {
    handle.waiters = handle.waiters || [];
    const waiter = (seen) => { if (seen === event) resolve({event}); };
    handle.waiters.push(waiter);
    handle.done.then(() => reject(new StepError('replication_ended', `replication ended before "${event}"`)));
  });
}

// ---------------------------------------------------------------- steps
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function winnerRev(target, id) {
  return (await target.get(id))._rev;
}

const ops = {
  put: (s) => db(s.db).put(s.doc, s.options || {}),
  bulkDocs: (s) => db(s.db).bulkDocs(s.docs, s.new_edits === false ? {new_edits: false} : (s.options || {})),
  update: async (s) => {
    // Edit the current winner (or s.rev) in place: how an app edits a doc without knowing its rev.
    const target = db(s.db);
    const doc = await target.get(s.id, s.rev ? {rev: s.rev} : {});
    return target.put({...doc, ...s.set});
  },
  remove: async (s) => {
    const target = db(s.db);
    return target.remove(s.id, s.rev || await winnerRev(target, s.id));
  },
  putAttachment: async (s) => {
    const target = db(s.db);
    let rev = s.rev;
    if (rev === undefined) rev = await target.get(s.id).then((d) => d._rev, () => undefined);
    return target.putAttachment(s.id, s.name, rev, Buffer.from(s.data, 'base64'), s.content_type);
  },
  get: (s) => db(s.db).get(s.id, s.options || {}),
  allDocs: (s) => db(s.db).allDocs(s.options || {}),
  changes: (s) => db(s.db).changes(s.options || {}),
  info: (s) => db(s.db).info(),
  destroy: (s) => db(s.db).destroy(),
  replicate: (s) => replicateStep(s),
  sync: (s) => replicateStep(s),
  wait: (s) => waitEvent(handleOf(s), s.event || 'paused'),
  stop: (s) => stop(handleOf(s), s.until),
  touch: (s) => { writeFileSync(s.path, s.text || ''); return {ok: true}; },
  sleep: async (s) => { await sleep(s.ms); return {ok: true}; },
  merge: (s) => {
    if (typeof pouchdbMerge[s.fn] !== 'function') {
      throw new StepError('bad_step', `pouchdb-merge has no ${s.fn}`);
    }
    return pouchdbMerge[s.fn](...(s.args || []));
  },
};

function handleOf(step) {
  const handle = handles.get(step.handle);
  if (!handle) {
    throw new StepError('bad_step', `no background replication named ${JSON.stringify(step.handle)}`);
  }
  return handle;
}

async function replicateStep(step) {
  const handle = startReplication(step);
  if (step.background) {
    if (!step.as) throw new StepError('bad_step', 'a background replication needs "as"');
    handles.set(step.as, handle);
    return {started: true};
  }
  if (step.until) return stop(handle, step.until);
  if (step.options && step.options.live) {
    throw new StepError('bad_step', 'a live replication needs "until" or "background"');
  }
  await handle.done;
  return summarize(handle);
}

async function runStep(step, timeoutMs, fn = ops[step.op]) {
  if (!fn) throw new StepError('bad_step', `unknown op ${JSON.stringify(step.op)}`);
  let timer;
  const timeout = new Promise((resolve, reject) => {
    const error = new StepError('timeout', `step timed out after ${timeoutMs} ms`);
    timer = setTimeout(() => reject(error), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(step)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** allDocs({include_docs, conflicts}) of a db, every live doc included.
 *
 * A plain allDocs() misses ids whose first UTF-8 byte is >= 0xC3 (e.g. Arabic or emoji ids) in PouchDB's
 * leveldb-core adapters, memory included: sublevel-pouchdb bounds its key range with '\xff'. So list the
 * ids from the changes feed and ask allDocs for exactly those keys. */
async function snapshot(names, options) {
  const out = {};
  for (const name of names) {
    const target = db(name);
    const ids = (await target.changes({since: 0, style: 'all_docs'})).results.map((row) => row.id);
    const res = await target.allDocs({include_docs: true, conflicts: true, ...options, keys: ids});
    const rows = res.rows.filter((row) => !row.error && !(row.value && row.value.deleted));
    rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    out[name] = {total_rows: rows.length, offset: 0, rows};
  }
  return out;
}

async function main() {
  const output = {ok: true, steps: [], results: {}, dbs: {}, http_errors: http.errors, warnings};
  let script;
  try {
    script = JSON.parse(readFileSync(0, 'utf8'));
  } catch (err) {
    return {...output, ok: false, error: {name: 'bad_script', message: String(err.message)}};
  }
  aliases = script.remotes || {};
  http.trace = !!script.trace;
  const timeoutMs = script.step_timeout_ms || DEFAULT_STEP_TIMEOUT_MS;
  for (const [index, step] of (script.steps || []).entries()) {
    const started = Date.now();
    const requestsBefore = http.count;
    const logBefore = http.log.length;
    const record = {op: step.op};
    try {
      const result = await runStep(step, step.timeout_ms || timeoutMs);
      record.result = result;
      if (step.as && !step.background) output.results[step.as] = result;
      // A replication that failed resolves rather than throws; it still fails the step.
      if (REPLICATION_OPS.has(step.op) && result && result.ok === false) {
        record.error = {name: 'replication_failed', message: `replication ended with status ${result.status}`,
          cause: result.error};
      }
    } catch (err) {
      record.error = errorJson(err);
      // A tolerated failure is a result too: tests assert on it (e.g. get of a deleted doc -> 404 "deleted").
      if (step.as && step.may_fail) output.results[step.as] = {error: record.error};
    }
    record.ms = Date.now() - started;
    record.requests = http.count - requestsBefore;
    if (http.trace) record.http = http.log.slice(logBefore);
    output.steps.push(record);
    if (record.error && !step.may_fail) {
      output.ok = false;
      output.error = {...record.error, step: index, op: step.op};
      break;
    }
  }
  // Cancel whatever still runs (live, or cut off by a timeout) so the snapshot is stable.
  for (const handle of started) handle.rep.cancel();
  try {
    const names = script.snapshot || [...locals.keys()];
    const take = () => snapshot(names, script.snapshot_options || {});
    output.dbs = await runStep({op: 'snapshot'}, timeoutMs, take);
  } catch (err) {
    output.ok = false;
    output.error = output.error || {...errorJson(err), op: 'snapshot'};
  }
  output.requests = http.count;
  return output;
}

let emitted = false;

function emit(output) {
  if (emitted) return;
  emitted = true;
  let text;
  try {
    text = JSON.stringify(output, replacer);
  } catch (err) {
    text = JSON.stringify({ok: false, error: {name: 'unserializable', message: String(err.message)}});
  }
  // Exit only once stdout is flushed: a pipe write is asynchronous and process.exit() would truncate it.
  // Exit 0 whenever a result was printed; the caller judges "ok". A crash without output is the only failure.
  process.stdout.write(text + '\n', () => process.exit(0));
}

process.on('unhandledRejection', (err) => {
  // PouchDB rejects some internal promises nobody awaits (e.g. an aborted longpoll); record, don't crash.
  warnings.push({unhandled_rejection: errorJson(err)});
});
process.on('uncaughtException', (err) => {
  emit({ok: false, error: {...errorJson(err), op: 'uncaught'}, steps: [], dbs: {}, warnings});
});

main().then(emit, (err) => emit({ok: false, error: errorJson(err), steps: [], dbs: {}, warnings}));
