"""berkas.api."""
