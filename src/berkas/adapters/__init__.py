"""berkas.adapters."""
