"""Event forecasting (neural TPP): THP+ with a log-normal mixture decoder on aaren.Backbone; see README.md."""
