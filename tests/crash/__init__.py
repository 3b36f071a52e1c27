"""SIGKILL of the Wasl server and the records worker at random points, and what must survive it (docs/crash.md)."""
