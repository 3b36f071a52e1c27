// Time a stock in-memory PouchDB 9 replicating with a CouchDB-protocol server (run by bench/replication.py).
//
// stdin: {"url": "http://user:pass@host:port/couch/db", "docs_file": "/tmp/docs.json", "batch_size": 100}
// stdout: {"ok", "docs", "push": {...}, "pull": {...}, "noop": {...}}; each phase has seconds, requests,
// docs_read, docs_written, doc_write_failures. "noop" is a sync run after a warm-up sync, so both directions
// start from a current checkpoint: it measures the fixed cost of a "nothing new" sync.
import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-replication'));
// The fetch the http adapter would use anyway, resolved from the adapter, wrapped only to count requests.
const {fetch: pouchFetch} = createRequire(require.resolve('pouchdb-adapter-http'))('pouchdb-fetch');

let requests = 0;
const failures = [];

async function countingFetch(url, options = {}) {
  requests += 1;
  const response = await pouchFetch(url, options);
  if (response.status >= 400 && failures.length < 20) {
    const method = options.method || 'GET';
    // A 404 on the setup probe of a new db or on a checkpoint not yet written is the normal first run.
    const normal = response.status === 404 && method === 'GET' && /(\/$|\/_local\/)/.test(url);
    if (!normal) {
      const body = await response.clone().text().catch(() => '');
      failures.push({method, url: String(url).replace(/\/\/[^/@]*@/, '//'), status: response.status,
        body: body.slice(0, 500)});
    }
  }
  return response;
}

async function timed(run) {
  const before = requests;
  const start = process.hrtime.bigint();
  const res = await run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const parts = res.push ? [res.push, res.pull] : [res];
  const sum = (key) => parts.reduce((n, part) => n + (part[key] || 0), 0);
  return {
    seconds, requests: requests - before, docs_read: sum('docs_read'), docs_written: sum('docs_written'),
    doc_write_failures: sum('doc_write_failures'), ok: parts.every((part) => part.ok),
  };
}

async function main() {
  const opts = JSON.parse(readFileSync(0, 'utf8'));
  const docs = JSON.parse(readFileSync(opts.docs_file, 'utf8'));
  const rep = {batch_size: opts.batch_size || 100};
  const source = new PouchDB('bench-source', {adapter: 'memory'});
  const copy = new PouchDB('bench-copy', {adapter: 'memory'});
  const remote = new PouchDB(opts.url, {fetch: countingFetch});
  // Loading the source is not measured: only the wire protocol is.
  for (let i = 0; i < docs.length; i += 1000) await source.bulkDocs(docs.slice(i, i + 1000));

  const push = await timed(() => PouchDB.replicate(source, remote, rep));
  const pull = await timed(() => PouchDB.replicate(remote, copy, rep));
  const copied = (await copy.info()).doc_count;
  await PouchDB.sync(copy, remote, rep);  // warm-up: gives the push direction its checkpoint too
  const noop = await timed(() => PouchDB.sync(copy, remote, rep));
  return {ok: push.ok && pull.ok && noop.ok && copied === docs.length && !failures.length,
    docs: docs.length, copied, push, pull, noop, failures};
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0)),
  (err) => process.stdout.write(JSON.stringify({ok: false, error: {name: err.name, status: err.status,
    message: err.message}, failures}) + '\n', () => process.exit(0)),
);
