"""berkas.core."""
