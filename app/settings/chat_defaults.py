"""Defaults for chat that the CLI and the UI share."""

# A short, neutral system prompt. Small chat models answer much better with one than with their
# template's built-in default (SmolLM2 135M answers "What is the capital of France?" with
# nonsense under its template's default, and with Paris under this one).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Conservative sampling: small local models wander off at the usual 0.7-0.8 (SmolLM2's authors
# recommend 0.2 and top-p 0.9) and fall into loops without a mild repetition penalty; users who
# want more variety raise them per conversation.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9
DEFAULT_REPEAT_PENALTY = 1.1
