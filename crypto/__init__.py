"""Cryptography recipes. Nothing outside this package imports ``cryptography.hazmat``."""
from __future__ import annotations

from .passwords import hash_password, verify_password

__all__ = ["hash_password", "verify_password"]
