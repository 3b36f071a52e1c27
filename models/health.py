"""health tables (filled in by the records work)."""
from __future__ import annotations
