"""berkas.cli."""
