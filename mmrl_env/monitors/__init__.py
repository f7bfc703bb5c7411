"""Monitors read the learners' unimodal logits to measure imbalance (no extra forward pass)."""
