// Stock PouchDB 9 tablets of the fleet (bench/fleet.py): several in-memory databases in one node process.
//
// Reads JSON commands, one a line, on stdin; answers each with one JSON line on stdout.
//   {"op": "init", "db": "records", "devices": [{name, user, village, token, roots: [CouchDB root], home, seed}],
//    "behaviour": {switch, register, edit, delete, pause: [s, s]}}            -> {"ok": true}
//   {"op": "run", "seconds": S}   each tablet loops (S seconds, min_rounds at least): sync, offline work, pause
//                                                                           -> {"syncs": [...], "created": {...}}
//   {"op": "sync", "direction"}   one push or pull per tablet, no work       -> {"syncs": [...], "created": {}}
//   {"op": "dump"}                every tablet's documents                   -> {"states": {name: {id: entry}}}
// A sync is PouchDB.replicate(local, remote) then PouchDB.replicate(remote, local), as a tablet app does it,
// signed in with the device token as Basic auth (`_device:<token>`, docs/access.md). The tablets write what
// bench/fleetdocs.py writes: households, patients, visits, edits of shared records, deletions of own visits.
import {createRequire} from 'node:module';
import {fileURLToPath} from 'node:url';
import readline from 'node:readline';

const require = createRequire(fileURLToPath(new URL('../tests/peer/package.json', import.meta.url)));
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-replication'));
// The fetch the http adapter would use, resolved from the adapter itself, wrapped to count each tablet's requests.
const {fetch: pouchFetch} = createRequire(require.resolve('pouchdb-adapter-http'))('pouchdb-fetch');

const GIVEN = ['Amina', 'Halima', 'Fatuma', 'Zawadi', 'Baraka', 'Juma', 'Omar', 'Neema', 'Said', 'Rehema'];
const FAMILY = ['Banda', 'Phiri', 'Mwale', 'Otieno', 'Hassan', 'Njoroge', 'Kamau', 'Abdi', 'Wanjiku'];
const CONDITIONS = ['hypertension', 'diabetes', 'asthma', 'hiv', 'epilepsy', 'tb'];
const KINDS = ['routine', 'antenatal', 'chronic_follow_up', 'screening'];

let tablets = [];
let how = {};
let dbName = 'records';

// ---------------------------------------------------------------- a seeded random source per tablet
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (rnd, list) => list[Math.floor(rnd() * list.length)];
const between = (rnd, lo, hi) => lo + rnd() * (hi - lo);
const int = (rnd, lo, hi) => lo + Math.floor(rnd() * (hi - lo));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => new Date().toISOString();

function uuid(rnd) {
  const hex = Array.from({length: 32}, () => int(rnd, 0, 16).toString(16));
  hex[12] = '4';
  hex[16] = (8 + int(rnd, 0, 4)).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

// ---------------------------------------------------------------- documents (as bench/fleetdocs.py)
function household(t) {
  return {_id: uuid(t.rnd), type: 'household', area: t.village, name: `House of ${pick(t.rnd, FAMILY)}`,
    landmark: 'near the school', gps: {lat: +between(t.rnd, -4.5, -1).toFixed(5), lon: +between(t.rnd, 36, 40).toFixed(5)},
    updated_at: now(), updated_by: t.user};
}

function patient(t, householdId) {
  return {_id: uuid(t.rnd), type: 'patient', area: t.village, household_id: householdId,
    given_name: pick(t.rnd, GIVEN), family_name: pick(t.rnd, FAMILY), sex: pick(t.rnd, ['female', 'male']),
    estimated_age_years: int(t.rnd, 1, 80), consent: {share_with_partners: t.rnd() < 0.5},
    chronic_conditions: [], updated_at: now(), updated_by: t.user};
}

function visit(t, patientId) {
  const stamp = now();
  return {_id: uuid(t.rnd), type: 'visit', area: t.village, patient_id: patientId, chw: t.user, visited_at: stamp,
    kind: pick(t.rnd, KINDS), observations: {temperature_c: +between(t.rnd, 36, 40).toFixed(1),
      weight_kg: +between(t.rnd, 3, 90).toFixed(1), malaria_rdt: pick(t.rnd, ['positive', 'negative', 'not_done'])},
    notes: 'counselled; follow up in two weeks', updated_at: stamp, updated_by: t.user};
}

function edit(t, doc) {
  const body = {...doc};
  delete body._conflicts;
  if (doc.type === 'household') {
    if (t.rnd() < 0.5) body.landmark = `${pick(t.rnd, ['by', 'near'])} the ${pick(t.rnd, ['tree', 'pump', 'church'])}`;
    else body.name = `House of ${pick(t.rnd, FAMILY)}`;
  } else {
    const field = pick(t.rnd, ['phone', 'chronic_conditions', 'family_name', 'consent']);
    if (field === 'phone') body.phone = `+254 7${String(int(t.rnd, 0, 1e8)).padStart(8, '0')}`;
    else if (field === 'family_name') body.family_name = pick(t.rnd, FAMILY);
    else if (field === 'consent') body.consent = {share_with_partners: t.rnd() < 0.5};
    else body.chronic_conditions = [...new Set([...(doc.chronic_conditions || []), pick(t.rnd, CONDITIONS)])].sort();
  }
  body.updated_at = now();
  body.updated_by = t.user;
  return body;
}

async function work(t) {
  const rows = (await t.db.allDocs({include_docs: true})).rows.map((r) => r.doc);
  const patients = rows.filter((d) => d.type === 'patient');
  const shared = patients.concat(rows.filter((d) => d.type === 'household'));
  const put = async (doc) => { await t.db.put(doc); t.created.push(doc._id); };
  if (!patients.length || t.rnd() < how.register) {
    const home = household(t);
    const person = patient(t, home._id);
    await put(home);
    await put(person);
    patients.push(person);
  }
  for (let i = int(t.rnd, 1, 3); i > 0; i--) await put(visit(t, pick(t.rnd, patients)._id));
  if (shared.length && t.rnd() < how.edit) await t.db.put(edit(t, pick(t.rnd, shared)));
  const own = rows.filter((d) => d.type === 'visit' && d.chw === t.user);
  if (own.length && t.rnd() < how.delete) await t.db.remove(pick(t.rnd, own));
}

// ---------------------------------------------------------------- syncing
function remote(t, server) {
  if (!t.remotes[server]) {
    const url = new URL(`${t.roots[server]}/${dbName}`);
    url.username = '_device';
    url.password = t.token;
    const fetch = (resource, options) => { t.requests += 1; return pouchFetch(resource, options); };
    t.remotes[server] = new PouchDB(url.toString(), {skip_setup: true, fetch});
  }
  return t.remotes[server];
}

async function sync(t, switchChance, direction = 'both') {
  const server = t.rnd() >= switchChance ? t.home : (t.home + 1) % t.roots.length;
  const started = performance.now();
  const before = t.requests;
  const record = {device: t.name, kind: 'pouchdb', server, pushed: 0, pulled: 0, retries: 0, ok: true, error: null};
  try {
    const none = {docs_written: 0, doc_write_failures: 0};
    const push = direction === 'pull' ? none : await PouchDB.replicate(t.db, remote(t, server), {batch_size: 100});
    record.pushed = push.docs_written;
    const pull = direction === 'push' ? none : await PouchDB.replicate(remote(t, server), t.db, {batch_size: 100});
    record.pulled = pull.docs_written;
    if (push.doc_write_failures || pull.doc_write_failures) {
      record.ok = false;
      record.error = `write failures: push ${push.doc_write_failures}, pull ${pull.doc_write_failures}`;
    }
  } catch (err) {
    record.ok = false;
    record.error = `${err.name}: ${err.status || ''} ${err.message || err.reason || ''}`;
  }
  record.seconds = (performance.now() - started) / 1000;
  record.requests = t.requests - before;
  return record;
}

async function run(seconds) {
  const deadline = performance.now() + seconds * 1000;
  const syncs = [];
  await Promise.all(tablets.map(async (t) => {
    await sleep(between(t.rnd, 0, how.pause[1]) * 1000);
    for (let rounds = 0; performance.now() < deadline || rounds < how.min_rounds; rounds++) {
      syncs.push(await sync(t, how.switch));
      await work(t);
      await sleep(between(t.rnd, how.pause[0], how.pause[1]) * 1000);
    }
  }));
  const created = Object.fromEntries(tablets.map((t) => [t.name, t.created.splice(0)]));
  return {syncs, created};
}

async function syncOnce(direction) {
  const syncs = await Promise.all(tablets.map((t) => sync(t, 0.5, direction)));
  return {syncs, created: {}};
}

// ---------------------------------------------------------------- state, as bench/fleetcheck.py reads it
async function dump() {
  const states = {};
  for (const t of tablets) {
    const state = {};
    const rows = (await t.db.changes({since: 0, style: 'all_docs'})).results;
    const wanted = rows.flatMap((row) => row.changes.map((c) => ({id: row.id, rev: c.rev})));
    const got = wanted.length ? (await t.db.bulkGet({docs: wanted, revs: true})).results : [];
    for (const row of rows) state[row.id] = {deleted: !!row.deleted, leaves: {}, winner: null};
    for (const item of got) {
      for (const d of item.docs) {
        if (!d.ok) throw new Error(`bulkGet ${item.id}: ${JSON.stringify(d)}`);
        state[item.id].leaves[d.ok._rev] = d.ok;
      }
    }
    for (const row of (await t.db.allDocs({include_docs: true, conflicts: true})).rows) {
      state[row.id].winner = row.doc;
    }
    states[t.name] = state;
  }
  return {states};
}

// ---------------------------------------------------------------- commands
const commands = {
  init: async (cmd) => {
    dbName = cmd.db;
    how = cmd.behaviour;
    tablets = cmd.devices.map((d) => ({...d, rnd: mulberry32(d.seed), created: [], remotes: {}, requests: 0,
      db: new PouchDB(`tablet-${d.name}`, {adapter: 'memory'})}));
    return {ok: true};
  },
  run: (cmd) => run(cmd.seconds),
  sync: (cmd) => syncOnce(cmd.direction),
  dump: () => dump(),
};

const lines = readline.createInterface({input: process.stdin});
for await (const line of lines) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  let answer;
  try {
    answer = await commands[cmd.op](cmd);
  } catch (err) {
    answer = {error: `${err.name}: ${err.message}`, stack: String(err.stack).split('\n').slice(0, 4).join('\n')};
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
process.exit(0);
