"""Replication tests: checkpoint comparison, the replicator against live servers, faults."""
