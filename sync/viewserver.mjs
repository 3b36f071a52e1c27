// Runs design-document map and reduce functions for sync/views.py, like CouchDB's couchjs.
// Reads one JSON request on stdin, writes one JSON answer on stdout.
//   {"op": "map", "map": "function (doc) {...}", "docs": [...]}
//       -> {"rows": [[docIndex, key, value], ...]}
//   {"op": "reduce", "reduce": "function (keys, values, rereduce) {...}", "groups": [[[[key, id], ...], [value, ...]], ...]}
//       -> {"values": [...]}
// Each function runs in a fresh vm context holding only emit/sum/log: no require, no process.
// The server also starts Node with its permission model (no file writes, no child processes).
import vm from 'node:vm';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));

function compile(source, context) {
  const fn = vm.runInNewContext('(' + source + ')', context, {timeout: 5000});
  if (typeof fn !== 'function') throw new Error('not a function');
  return fn;
}

function answer(obj) { process.stdout.write(JSON.stringify(obj)); }

try {
  if (request.op === 'map') {
    const rows = [];
    let current = -1;
    const context = vm.createContext({
      emit: (key, value) => rows.push([current, key === undefined ? null : key, value === undefined ? null : value]),
      sum: (xs) => xs.reduce((a, b) => a + b, 0),
      log: () => {},
    });
    const map = compile(request.map, context);
    request.docs.forEach((doc, i) => {
      current = i;
      try { map(doc); } catch (e) { /* CouchDB skips a document whose map function throws */ }
    });
    answer({rows});
  } else if (request.op === 'reduce') {
    const context = vm.createContext({sum: (xs) => xs.reduce((a, b) => a + b, 0), log: () => {}});
    const reduce = compile(request.reduce, context);
    answer({values: request.groups.map(([keys, values]) => reduce(keys, values, false) ?? null)});
  } else {
    answer({error: 'unknown op'});
  }
} catch (e) {
  answer({error: String(e && e.message || e)});
}
