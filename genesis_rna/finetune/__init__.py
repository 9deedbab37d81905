"""Fine-tuning: task data, the trainer, structure (pair) tasks, prediction with a fine-tuned model."""
