"""The one partitioning every stage shares: days of received date, UTC."""

import dagster as dg

from telemetry_assets import settings

daily_partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start(), timezone="UTC")
