"""Gymnasium environments: the shared base, DUS (sample quantity) and BSS (curriculum)."""
