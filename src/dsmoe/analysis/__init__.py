"""Analysis: plots of training and routing."""
