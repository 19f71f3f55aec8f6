"""llamadesk's application layer: the engine, the model library, the CLI and the terminal UI."""
