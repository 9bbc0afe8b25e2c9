"""berkas.services: the use cases, one module each; collaborators arrive through
``__init__`` and only core is imported (docs/design.md 5.1)."""
