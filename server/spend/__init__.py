"""Spend control: budgets, spend in flight, pacing, frequency caps and win/loss notifications."""
