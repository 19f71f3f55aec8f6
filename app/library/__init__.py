"""The model library: what can run here (catalog), the record of pulled and made models
(registry), the starter models, whether a model fits memory (fit), and checkpoint -> GGUF in one
step (checkpoint_conversion)."""
