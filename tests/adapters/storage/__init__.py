"""Contract tests of the blob store adapters."""
