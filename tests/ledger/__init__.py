"""Tests of prepush/ledger/: the ledger on SQLite and PostgreSQL."""
