"""llamadesk.convert: PyTorch checkpoints to GGUF, without torch.

Public entry points: `convert_checkpoint(source, output, outtype, force, progress)` converts a
checkpoint folder; `plan_conversion` describes what it would write (for --dry-run);
`resolve_source` turns a folder or a Hub repo id into a local folder.
"""

from .converter import ConversionPlan, convert_checkpoint, default_output, plan_conversion, write_gguf

__all__ = ["ConversionPlan", "convert_checkpoint", "default_output", "plan_conversion", "write_gguf"]
