"""Decoding: greedy and batched beam search on the key/value cache, and the translator."""
