"""Garbage collection: `simple-registry gc`, a mark and sweep that runs while pushes go on,
one at a time per store under a leadership in the coordinator (docs/gc.md)."""
