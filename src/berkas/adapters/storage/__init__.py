"""Blob stores: where uploaded bytes live (local disk, in-memory twin; S3 beside them)."""
