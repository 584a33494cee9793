"""Tests of the command line: each order as an operator and cron run it."""
