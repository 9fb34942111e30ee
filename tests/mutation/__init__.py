"""Mutation check: one deliberate one-line bug at a time, on a copy of the tree, and the tests that must catch it."""
