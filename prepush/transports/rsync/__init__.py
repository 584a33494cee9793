"""The rsync transport: the real rsync binary, over SSH or to an rsync daemon.

- :mod:`.transport`: :class:`~.transport.RsyncTransport`, each request of the protocol one
  rsync invocation given exactly the files it concerns.
- :mod:`.connect`: reaching a difusor (:func:`~.connect.open_rsync`): this machine's rsync,
  the runtime directory, the child's environment, one listing that proves the way in.
- :mod:`.ssh`: the OpenSSH ControlMaster an SSH difusor's invocations share, host key pinned.
- :mod:`.process`: running rsync children, bounded, killed with their group.
- :mod:`.errors`: what rsync's exit codes and messages mean, in Spanish.
"""
