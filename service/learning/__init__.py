"""Learning what helps: causal excursion effects and off-policy values from the decision log."""
