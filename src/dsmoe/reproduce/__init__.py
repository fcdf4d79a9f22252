"""Reproduce the papers' controlled comparisons at small scale: suites of variants of one base, trained over
seeds with equal steps or equal time, compared with the published numbers (`dsmoe reproduce`)."""
