"""Stage 4: scores of the maps: localisation against ground truth, faithfulness."""
