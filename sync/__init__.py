"""Replication engine: CouchDB revision trees, the change feed and the document store.

Pure modules (no Flask, no database, no I/O) - they can be read and tested alone:

- ``sync.errors``   the CouchError hierarchy with CouchDB's wire strings
- ``sync.revs``     revision ids: parse, format, CouchDB's deterministic rev hash
- ``sync.revtree``  queries over a revision tree (winner, leaves, conflicts, paths)
- ``sync.merge``    merging a revision path into a tree, and stemming
- ``sync.scope``    access keys of documents and users, and the write rules
- ``sync.records.merge3``, ``sync.records.project`` (see ``sync.records``)

Modules over the database (SQLAlchemy models, no Flask request globals):

- ``sync.store``    databases, the write lock that orders the change feed, attachment blobs
- ``sync.writes``, ``sync.batch``   document writes, and their set-wise SQL
- ``sync.reads``, ``sync.docview``   document reads, and building a document from its tree
- ``sync.changes``, ``sync.alldocs``, ``sync.local``
                    the change feed, ``_all_docs``, ``_local`` docs
- ``sync.rows``, ``sync.dbapi``      hot row fetches, run on the driver's cursor below the ORM
- ``sync.scopeindex``, ``sync.scopefeed``, ``sync.scopes``, ``sync.access_gate``
                    the scope index, scoped feeds, a user's scope, and the access check on writes
- ``sync.access``, ``sync.devices``, ``sync.audit``   areas and users, enrolled devices, the audit log
- ``sync.serverdb`` one of this server's databases as a replication endpoint (the bridge)

Replication between endpoints: ``sync.endpoint`` (the protocol), ``sync.replicator``,
``sync.checkpoint``, ``sync.remote`` (the one HTTP module). ``sync.device``: the tablet's
encrypted store. ``sync.records``: health records on top of all this.

Revision tree format (the same as pouchdb-merge, so the two can be read side by side)::

    RevTree = list[RevPath]                 # several roots are possible after stemming
    RevPath = {"pos": int, "ids": RevNode}  # pos = depth of the root node (>= 1)
    RevNode = [hash: str, opts: dict, children: list[RevNode]]
    opts    = {"status": "available" | "missing", "deleted": True (only when deleted)}

"available" means the server holds that revision's body; "missing" that it knows the
id only (an ancestor sent as part of ``_revisions``, or a body removed by compaction).
"""
