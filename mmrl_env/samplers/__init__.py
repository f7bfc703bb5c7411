"""Samplers decide which samples each modality sees: DUS quantities, BSS curricula."""
