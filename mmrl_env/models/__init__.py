"""Encoders, fusion heads and the multimodal network."""
