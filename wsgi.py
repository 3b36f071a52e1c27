"""WSGI entry point: ``gunicorn wsgi:app``."""
from __future__ import annotations

import sys

from api import create_app

# gunicorn's gthread worker hands each request from its event-loop thread to a pool thread
# and back; a thread woken by I/O waits for the GIL up to the switch interval (5 ms by
# default) while another computes. Requests here take a few ms, so hand it over sooner.
sys.setswitchinterval(0.0005)

app = create_app()
