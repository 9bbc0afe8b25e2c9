"""berkas: a self-hostable document intake service speaking DOKU's Partner file API."""

__version__ = "0.1.0"

# The wheel `make dist` builds (PEP 427: name-version-python tag-abi tag-platform tag).
# berkas is on no package index, so a message naming an extra to install names this file
# (README "Installing"), never the bare name an index would resolve to another package.
WHEEL = f"berkas-{__version__}-py3-none-any.whl"


def install_hint(extra: str) -> str:
    """How to add ``extra`` to berkas: from its wheel, or from a checkout."""
    return f"pip install './{WHEEL}[{extra}]' (or '.[{extra}]' in a checkout)"
