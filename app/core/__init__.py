"""The core every other layer stands on; it imports nothing else of llamadesk.

errors (what users are shown), atomic_file (outputs never half-written), file_removal (a
model's files deleted all or none where a folder refuses), paths (data and config folders),
byte_sizes, json_file (a JSON object from disk, checked), gguf_header / gguf_file / gguf_naming
(GGUF files read and validated without llama.cpp), gguf_requirements (what a model must hold
before llama.cpp may load it), imatrix_file, machine (CPU, memory, GPUs), memory_budget (the
reserve and KV cache formulas), value_ranges (the range of every number a user sets).
"""
