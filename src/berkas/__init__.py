"""berkas: a self-hostable document intake service speaking DOKU's Partner file API."""

__version__ = "0.1.0"
