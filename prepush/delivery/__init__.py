"""One delivery, whatever its direction: the per-file contract (contract.py) and the run
around the protocol (runner.py), shared by publish and pull."""
