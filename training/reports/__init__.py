"""Reports over the event log: KPIs and experiments, as JSON, CSV and self-contained HTML."""
