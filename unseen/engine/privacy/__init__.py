"""The privacy rules, one module each: suppression, masks, participants, noise, budgets."""
