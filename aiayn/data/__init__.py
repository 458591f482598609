"""Data stages: the raw corpora (demo generator, WMT14 download) and cleaning."""
