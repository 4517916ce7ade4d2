"""UEA multivariate classification with padding masks: protocol, data module, model, online classifier (README.md)."""
