"""Many tablets against two servers on one PostgreSQL (docs/scale.md)."""
