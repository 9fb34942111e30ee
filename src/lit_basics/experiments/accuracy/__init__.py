"""Test accuracy over split seeds: shipped configs next to scikit-learn on the same rows."""
