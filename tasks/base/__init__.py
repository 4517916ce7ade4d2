"""The model base every task builds on: TaskModule (backbone + optimizer / lr schedule), optimizers, positions."""
