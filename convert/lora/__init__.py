"""llamadesk.convert.lora: PEFT LoRA adapters to GGUF adapters, and merged into a base, without torch.

Public entry points:
- `plan_adapter(adapter_folder, base, outtype)`: what the GGUF adapter will hold (no weights read);
- `write_adapter(plan, output, force, progress)`: write it atomically, one tensor at a time;
- `merged_tensors(checkpoint, adapters)`: a checkpoint's tensors with adapters folded in (W + s*B@A).

A family plugs in through convert/'s own tables: the base's config names its GGUF architecture,
architectures.gguf_tensor_name names the adapter's target modules, and adapter_plan.weight_transform says how the
base's weights are reordered (which the adapter's B matrices follow).
"""

from llamadesk.convert.lora.adapter_plan import AdapterPlan, plan_adapter
from llamadesk.convert.lora.adapter_writer import write_adapter
from llamadesk.convert.lora.merge import AdapterChoice, merged_tensors, parse_adapter_choice

__all__ = ["AdapterChoice", "AdapterPlan", "merged_tensors", "parse_adapter_choice", "plan_adapter", "write_adapter"]
