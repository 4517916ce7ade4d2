"""Regenerating D4RL-format data (the SAC / zoo pipeline behind scripts/make_rl_data.py), apart from the
Decision Transformer: behaviour policies, rollouts, SAC training to the medium level, the recipe (recipe.yaml)
and the regenerator. Files follow the one D4RL schema of tasks/rl/d4rl_format.py, which the reader
(tasks/rl/data.py) uses too."""
