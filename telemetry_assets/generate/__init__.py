"""Synthetic, realistic AI-feature traffic for demos, tests and the benchmark."""
