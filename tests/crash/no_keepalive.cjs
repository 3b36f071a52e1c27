// Preloaded into the crash scenario's PouchDB peer (node --require). Node 20's http.globalAgent keeps
// connections alive, and node-fetch 2 (PouchDB's fetch) can then wait forever for a reply on a
// connection the killed server took down. One connection per request, as before Node 19.
const http = require('node:http');
http.globalAgent = new http.Agent({keepAlive: false});
