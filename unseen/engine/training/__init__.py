"""Joint modelling: entity alignment by PSI and vertical logistic regression."""
