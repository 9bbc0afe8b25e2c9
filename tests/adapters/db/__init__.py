"""Contract and integration tests of the metadata store adapters."""
