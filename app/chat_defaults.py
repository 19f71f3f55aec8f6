"""Defaults for chat that the CLI and the UI share."""

# A short, neutral system prompt. Small chat models answer much better with one than with their
# template's built-in default (SmolLM2 135M answers "What is the capital of France?" with
# nonsense under its template's default, and with Paris under this one).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
