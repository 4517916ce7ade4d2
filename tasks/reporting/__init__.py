"""Reporting: records -> one table per experiment (results/tables/, README blocks, plots)."""
