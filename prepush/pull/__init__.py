"""``prepush pull``: the difusor's side. Fetch each corte from the institute's origin, verify
it against the institute's pinned key, and publish it to the difusor's own site with the same
protocol the institute uses (:mod:`prepush.publish.protocol`).

- :mod:`prepush.pull.config`: the pull configuration, validated with locations.
- :mod:`prepush.pull.origins`: reading the origin (HTTPS or S3), conditionally, bounded.
- :mod:`prepush.pull.cache`: the local package cache, assembled and verified.
- :mod:`prepush.pull.destinations`: the difusor's own site (a directory or a bucket), opened.
- :mod:`prepush.pull.puller`: one pass, with its retries and its rows in the ledger.
- :mod:`prepush.pull.run`: a run of one pass or the ``--watch`` loop, under the local lock.
- :mod:`prepush.pull.report`: what the difusor files in its informe técnico.
"""
