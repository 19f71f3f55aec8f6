"""llamadesk's application, and below it the layers convert/ and quantize/ build on.

Layers, each importing only those under it (tests/test_layers.py checks):
- core/: errors, atomic files, paths, sizes, JSON files, GGUF reading, machine facts, memory
  formulas. Imports nothing else of llamadesk.
- engine/: the only code that loads llama.cpp (chat, scoring, activations, the quantizer's child).
- llamadesk.convert and llamadesk.quantize: checkpoints to GGUF, GGUF to smaller GGUF.
- the application: settings/, chat/ (conversations, store, export), library/, hub/, translate/,
  commands/ with cli.py, and tui/.
"""
