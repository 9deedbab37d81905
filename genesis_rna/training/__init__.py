"""Training: the loop and its step strategies (dense, AST), checkpoints, losses, FLOP accounting, pretraining."""
