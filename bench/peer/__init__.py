"""The careful peer: the upload endpoint a platform's own engineers would write (issue 8)."""
