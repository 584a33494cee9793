"""The S3 transport: a difusor whose site is a bucket (AWS S3 or any S3-compatible store),
optionally behind CloudFront, and the bucket a pull may read as its origin.

- :mod:`.transport`: :class:`~.transport.S3Transport`, the transport interface over one S3
  client (and CloudFront's): reads, PUTs with their headers, conditional writes for the lock,
  batched deletes, invalidations.
- :mod:`.connect`: opening a bucket's client (:func:`~.connect.open_s3` for a difusor,
  :func:`~.connect.open_bucket` for any bucket), checked with one HeadBucket.
- :mod:`.origin`: a pull reading its origin bucket, conditionally and chunk by chunk.
- :mod:`.errors`: what an S3 or CloudFront answer means, in Spanish.
- :mod:`.cdn`: how CloudFront treats json/main.json, for ``prepush check``.
"""
