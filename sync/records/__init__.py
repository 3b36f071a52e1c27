"""Health records: document schemas, conflict resolution, central records, duplicates.

The records database's documents (docs/records.md) are checked on the way in, their
conflicts are resolved by a field-level three-way merge, and a worker projects them into
the central SQL records of ``models.health``.

Pure modules (no Flask, no database):

- ``sync.records.merge3``    field-level three-way merge of document bodies
- ``sync.records.matching``  duplicate-patient scoring (names across transliterations; uses jellyfish)
- ``sync.records.project``   a document body as central-record columns, and risk flags
- ``sync.records.demodata``  the demo data set's documents

Modules over the database:

- ``sync.records.schemas``     marshmallow schemas per document type (no database), built from
  ``sync.records.schemafields``
- ``sync.records.quarantine``  refused revisions, kept with their reason until released
- ``sync.records.resolve``     writes resolutions of conflicted documents
- ``sync.records.conflicts``   hard conflicts a supervisor reviews, and their choice
- ``sync.records.worker``      the change-feed worker that maintains the central records
- ``sync.records.duplicates``  duplicate candidates and the supervisors' list
- ``sync.records.patientmerge`` merging a duplicate patient into another, and its undo
- ``sync.records.visibility``  which central records a page or API user may see
- ``sync.records.visitlog``, ``reviews``, ``activity``  the supervisor pages' queries and review documents
- ``sync.records.campaigns``, ``progress``, ``filters``, ``charts``, ``exports``  campaigns and their progress
- ``sync.records.referrals``   the clinicians' referral list and status changes
- ``sync.records.demo``        ``wasl demo``: loads the demo data set
"""
