"""k-fold search (exercise 6): search files, Optuna study, fold runners for both engines, report."""
