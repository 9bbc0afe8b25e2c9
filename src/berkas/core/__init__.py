"""berkas.core: the domain. No web framework, database driver or network client (the
import contracts in pyproject.toml); content inspection, stripping and the envelope read
and write the files they are handed (docs/design.md 5.1)."""
