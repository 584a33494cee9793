"""Tests of prepush/ops/: check, status, report and verify."""
