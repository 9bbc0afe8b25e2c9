"""berkas.client."""
