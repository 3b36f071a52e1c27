"""A campaign's progress (``progress.progress``), kept in this process until its inputs change.

A progress page and its four charts ask for the same figures at once; so does an organiser
reloading while nothing new has arrived. A result is kept until the worker projects
another change or an assignment changes: both are part of the key.
"""
from __future__ import annotations

import threading
from typing import Any

from cachetools import LRUCache
from sqlalchemy import func, select

from models import db
from models.access import Assignment
from models.health import WorkerCheckpoint

from .campaigns import CampaignDoc
from .filters import Filters, reference_date
from .progress import progress

Json = dict[str, Any]
CACHE_SIZE = 64
_cache: LRUCache[tuple[Any, ...], Json] = LRUCache(CACHE_SIZE)
_lock = threading.Lock()  # the request threads of a worker share the cache


def _version(db_name: str) -> tuple[Any, ...]:
    """What the figures depend on besides the campaign: the worker's checkpoint and the assignments."""
    checkpoint = db.session.execute(select(WorkerCheckpoint.seq, WorkerCheckpoint.generation).where(
        WorkerCheckpoint.db_name == db_name)).first()
    assigned = db.session.execute(select(func.count(), func.max(Assignment.created_at))).first()
    return str(db.engine.url), tuple(checkpoint or ()), tuple(assigned or ())


def cached_progress(db_name: str, campaign: CampaignDoc, filters: Filters) -> Json:
    """``progress``, or the result kept for the same inputs. It is shared: do not change it."""
    key = (db_name, campaign.id, campaign.rev, filters, reference_date(campaign.body), _version(db_name))
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    data = progress(db_name, campaign, filters)
    with _lock:
        _cache[key] = data
    return data


def clear_cache() -> None:
    """Forget every kept result (the benchmark measures first requests with it)."""
    with _lock:
        _cache.clear()
