"""Renderers: pure functions of the assessment document (and, for some, the case store)."""
