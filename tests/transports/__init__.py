"""Tests of prepush/transports/: SFTP (client and pump), rsync and S3."""
