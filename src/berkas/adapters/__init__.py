"""berkas.adapters: everything that touches a disk, a network or a database, behind the
ports core declares; only ``berkas.wiring`` picks one (docs/design.md 5.1)."""
