"""The SFTP transport: one SSH connection per difusor, two SFTP channels on it.

- :mod:`.transport`: :class:`~.transport.SFTPTransport`, the transport interface over
  asyncssh's SFTP client for every request but the bulk puts.
- :mod:`.pump`: the hand-written pipeline that sends a corte's files (the one place that
  measured faster than asyncssh), with the SFTP protocol's constants and packets.
- :mod:`.connect`: opening the connection (:func:`~.connect.open_sftp`), host key pinned.
- :mod:`.errors`: what an SFTP status or a failed connection means, in Spanish.
"""
