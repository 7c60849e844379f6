"""Graph -> Graph transforms (autodiff, simplification, fusion, scheduling)."""
