"""berkas.api: the only package that imports the web framework: the app, its routes, the
wire schemas and the one error table (docs/design.md 5.1)."""
