"""Resolution of conflicted documents (placeholder until the resolver lands)."""
from __future__ import annotations


def resolve_document(db_name: str, doc_id: str, *, actor: str = "server") -> str | None:
    """Resolve ``doc_id`` if it has more than one live leaf; return the new winning rev, or None."""
    return None
