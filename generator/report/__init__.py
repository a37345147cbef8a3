"""Stage 5: the results table, its analysis, the typed Report and its findings."""
