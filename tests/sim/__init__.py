"""Tests of prepush/sim/: simulate and its synthetic PREP."""
