"""Offline RL on D4RL gym-mujoco: Decision Transformer with an Aaren or a Transformer backbone, and the
regeneration of D4RL-format data here (README.md)."""
