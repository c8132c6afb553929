"""Data contracts: the tracking plan compiled to pandera models, and the asset checks that guard tables."""
