"""Duplicate patients (placeholder until the matcher lands)."""
from __future__ import annotations


def refresh_candidates(db_name: str, patient_doc_ids: list[str]) -> None:
    """Recompute the duplicate candidates of these patients (called by the worker)."""
