"""llamadesk.convert: PyTorch checkpoints to GGUF, without torch.

Public entry points:
- `convert_checkpoint(source, output, outtype, force, progress)`: a folder or Hub repo id to a GGUF;
- `plan_conversion(folder, outtype)`: what it would write (tensors, types, size) without writing;
- `write_gguf(plan, output, force, progress, check)`: write a plan, with a check run before the rename;
- `resolve_source(text)`: a folder, or a Hub repo id downloaded to one.
"""

from llamadesk.convert.converter import ConversionPlan, convert_checkpoint, default_output, plan_conversion, write_gguf
from llamadesk.convert.source_location import resolve_source

__all__ = ["ConversionPlan", "convert_checkpoint", "default_output", "plan_conversion", "resolve_source", "write_gguf"]
