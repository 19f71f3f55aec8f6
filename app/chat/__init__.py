"""Conversations: fitting one into the context (context_fit), the SQLite store (the only code that
speaks SQL), export to Markdown/JSON, and code blocks in a reply."""
