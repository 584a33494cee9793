"""Tests of prepush/settings/: the roster and its checks."""
