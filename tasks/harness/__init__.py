"""The harness: a config -> one trained, tested, stored run (identity, resume, record, store, checks, loggers)."""
