"""The terminal UI (Textual): screens and widgets in their own modules, one .tcss per screen.

Nothing here imports llama.cpp: the model lives in EngineHost's thread, reached by messages.
"""
