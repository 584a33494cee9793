"""Tests of prepush/pull/: the difusor's side, from its origin to its destination."""
