"""Tests of the access model: scopes, areas, assignments, accounts, sign-in limits."""
