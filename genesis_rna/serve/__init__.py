"""The REST API and web page over one loaded model (``genesis-rna serve``; needs the [serve] extra)."""
