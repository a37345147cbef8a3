"""Stage 3: per-photo records: the explainer, the map methods, the overlay spec."""
