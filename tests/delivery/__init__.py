"""Tests of prepush/delivery/: the per-file contract and the delivery runner."""
