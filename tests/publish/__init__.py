"""Tests of prepush/publish/: the protocol, its state, workers, embargo, fencing, failover."""
