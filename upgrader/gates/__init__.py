"""Health gates: model, catalogue, wait policy, gather, observe and pure verdicts."""
