"""llamadesk.quantize: llama.cpp quantization, fitting a type to a machine, and its cost in quality."""
