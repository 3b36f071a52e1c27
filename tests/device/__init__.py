"""Tests of the device's encrypted local store (sync.device)."""
