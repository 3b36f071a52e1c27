"""Devices syncing over lossy 2G links in network namespaces."""
