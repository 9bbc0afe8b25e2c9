"""berkas.services."""
