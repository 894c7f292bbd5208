"""Forgetting metrics, across-seed statistics, report tables and plots."""
