"""Business sources (support tickets, conversions, user profiles) without Dagster."""
