"""Tests of prepush/corte/: the PREP's files read, reconciled, built into a package and its site."""
