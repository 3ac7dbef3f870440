"""Training in MLX: the losses, the teacher cache and the trainer shared by teacher fine-tuning and
student distillation. Never imports torch."""
