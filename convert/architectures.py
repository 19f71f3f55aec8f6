"""The model families llamadesk converts, described as data.

Each family says which GGUF architecture a checkpoint becomes, which tensors it must and may have
(by gguf's MODEL_TENSOR kinds; gguf's TensorNameMap knows every checkpoint's name for them), which
of them carry biases, and which named transform (tensor_transforms.py) each kind needs. Adding a
family is a new row here and a test, not a new code path: plan.py, gguf_metadata.py and
reference_forward.py read these tables and nothing else.

`gguf_tensor_name` is the one public HF name -> GGUF name mapping (LoRA adapters use it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gguf

T = gguf.MODEL_TENSOR
REQUIRED = object()  # marks a config key with no default: its absence is an error

# Every LLaMA-shaped block has these (per block where the name has {bid}).
LLAMA_TENSORS = (
    T.TOKEN_EMBD,
    T.OUTPUT_NORM,
    T.ATTN_NORM,
    T.ATTN_Q,
    T.ATTN_K,
    T.ATTN_V,
    T.ATTN_OUT,
    T.FFN_NORM,
    T.FFN_GATE,
    T.FFN_UP,
    T.FFN_DOWN,
)


@dataclass(frozen=True)
class Architecture:
    """How one checkpoint family maps onto a GGUF architecture."""

    gguf_arch: gguf.MODEL_ARCH
    # Tensor kinds every checkpoint of the family has; `output` is always optional (tied embeddings).
    required: tuple[T, ...] = LLAMA_TENSORS
    # Kinds whose `.bias` the checkpoint may carry (Qwen2's Q/K/V); any other bias is refused.
    biases: frozenset[T] = frozenset()
    # Kind -> name of the tensor_transforms.TRANSFORMS entry applied to its weight (never to a bias).
    transforms: dict[T, str] = field(default_factory=dict)
    # How the *source* checkpoint pairs rotary dimensions: "halves" (transformers' rotate_half,
    # every HF checkpoint) or "interleaved" (Meta's consolidated .pth). The numpy reference forward
    # pass rotates the source's tensors this way; llama.cpp's own choice follows from gguf_arch.
    rotary_pairs: str = "halves"
    # The feed-forward activation llama.cpp's graph for this architecture applies; a config naming
    # another (`hidden_act`/`hidden_activation`) is refused rather than converted into a wrong model.
    activation: str = "silu"
    # Family hyperparameters beyond HF_CONFIG_KEYS: field -> (config.json key, default or REQUIRED).
    extra_config: dict[str, tuple[str, object]] = field(default_factory=dict)
    # GGUFWriter method -> the field (of extra_config, or "rope_theta_swa") it records; None values are skipped.
    extra_gguf: dict[str, str] = field(default_factory=dict)
    # Gemma scales the token embeddings by sqrt(n_embd) before the first block (llama.cpp does too).
    scale_embedding: bool = False
    # Sliding-window layers: every `global_every`-th layer attends to everything, the others to the
    # last `sliding_window` positions. llama.cpp fixes this pattern per architecture, so a config's
    # `layer_types` must follow it.
    global_every: int | None = None
    # Gate and up projections stored as one matrix (gate rows first), as llama.cpp's phi3 keeps them:
    # its FFN_UP then has 2 * n_ff rows and there is no FFN_GATE.
    fused_gate_up: bool = False
    # Whether the family may rotate only the first `partial_rotary_factor` of each head (Phi-4-mini:
    # 0.75), the rest passed through; llama.cpp's graph rotates rope.dimension_count dimensions.
    partial_rotary: bool = False
    # A multimodal checkpoint converted for its language model alone, as llama.cpp does: the config
    # key holding the text model's hyperparameters (laid over the top level's), how the language
    # model's names are prefixed (prefix -> what the text model alone calls it), and the prefixes of
    # the other towers' tensors, left out.
    text_config: str | None = None
    text_prefixes: tuple[tuple[str, str], ...] = ()
    other_towers: tuple[str, ...] = ()
    # What a config without `tie_word_embeddings` means, as transformers reads it: Gemma's configs
    # as Google publishes them leave it out and tie (its config classes default to True).
    ties_by_default: bool = False
    # Whether a `sliding_window` in the config limits attention in the original, where llama.cpp's
    # graph for this architecture has none: "always" when set (Mistral), "when used" when
    # `use_sliding_window` says so (Qwen2/3). The converted model's context then stops at the window.
    unrun_window: str | None = None

    def language_model_name(self, name: str) -> str | None:
        """A checkpoint tensor's name as the language model alone would have it; None for another tower's."""
        if self.other_towers and name.startswith(self.other_towers):
            return None
        for prefix, replacement in self.text_prefixes:
            if name.startswith(prefix):
                return replacement + name.removeprefix(prefix)
        return name

    @property
    def permute_qk(self) -> bool:
        """Whether Q/K rows are reordered on the way (HF LLaMA's rotary halves back to Meta's pairs)."""
        return T.ATTN_Q in self.transforms


# HF checkpoints of LLaMA store Q and K with the rotary halves de-interleaved (transformers permuted
# Meta's weights when porting them); llama.cpp's LLaMA expects Meta's order, so they are permuted back.
LLAMA_HF = Architecture(
    gguf.MODEL_ARCH.LLAMA,
    transforms={T.ATTN_Q: "unpermute_query_rotary", T.ATTN_K: "unpermute_key_rotary"},
    unrun_window="always",  # Mistral 7B v0.1: a 4,096-token window in a 32,768-token context
)
LLAMA_META = Architecture(gguf.MODEL_ARCH.LLAMA, rotary_pairs="interleaved")
# Qwen2/2.5: LLaMA blocks with Q/K/V biases; llama.cpp's QWEN2 rotates halves (NEOX), as HF does,
# so nothing is permuted.
QWEN2 = Architecture(gguf.MODEL_ARCH.QWEN2, biases=frozenset({T.ATTN_Q, T.ATTN_K, T.ATTN_V}), unrun_window="when used")
# Qwen3: no biases, an RMS norm over each Q and K head before the rotation.
QWEN3 = Architecture(
    gguf.MODEL_ARCH.QWEN3, required=(*LLAMA_TENSORS, T.ATTN_Q_NORM, T.ATTN_K_NORM), unrun_window="when used"
)

# Gemma 3 (text): sandwich norms (after attention and after the feed-forward too), Q/K norms, every
# RMS norm stored as (w - 1), GELU(tanh), the embedding scaled by sqrt(n_embd), five sliding-window
# layers to one global one, each kind with its own rope base, tied embeddings.
# gguf calls Gemma's norm before the feed-forward FFN_PRE_NORM (the same "ffn_norm" name as LLaMA's).
GEMMA_NORMS = (
    T.OUTPUT_NORM,
    T.ATTN_NORM,
    T.ATTN_Q_NORM,
    T.ATTN_K_NORM,
    T.ATTN_POST_NORM,
    T.FFN_PRE_NORM,
    T.FFN_POST_NORM,
)
GEMMA3 = Architecture(
    gguf.MODEL_ARCH.GEMMA3,
    required=(
        *(T.FFN_PRE_NORM if kind == T.FFN_NORM else kind for kind in LLAMA_TENSORS),
        T.ATTN_Q_NORM,
        T.ATTN_K_NORM,
        T.ATTN_POST_NORM,
        T.FFN_POST_NORM,
    ),
    transforms=dict.fromkeys(GEMMA_NORMS, "fold_norm_offset"),
    activation="gelu_pytorch_tanh",
    extra_config={
        "sliding_window": ("sliding_window", REQUIRED),
        "final_logit_softcapping": ("final_logit_softcapping", None),
        "query_pre_attn_scalar": ("query_pre_attn_scalar", None),
    },
    extra_gguf={
        "add_sliding_window": "sliding_window",
        "add_final_logit_softcapping": "final_logit_softcapping",
        "add_rope_freq_base_swa": "rope_theta_swa",
    },
    scale_embedding=True,
    global_every=6,
    ties_by_default=True,
)

# Gemma 2: Gemma 3's sandwich norms, (w - 1) norms, GELU(tanh) and embedding scale, without Q/K
# norms; attention scores soft-capped (tanh(s / cap) * cap) as well as the final logits; one global
# layer after each sliding-window one; one rope base. Its norms are the Gemma 3 ones but the Q/K norms.
GEMMA2_NORMS = tuple(kind for kind in GEMMA_NORMS if kind not in (T.ATTN_Q_NORM, T.ATTN_K_NORM))
GEMMA2 = Architecture(
    gguf.MODEL_ARCH.GEMMA2,
    required=tuple(kind for kind in GEMMA3.required if kind not in (T.ATTN_Q_NORM, T.ATTN_K_NORM)),
    transforms=dict.fromkeys(GEMMA2_NORMS, "fold_norm_offset"),
    activation="gelu_pytorch_tanh",
    extra_config={
        "sliding_window": ("sliding_window", REQUIRED),
        "attn_logit_softcapping": ("attn_logit_softcapping", None),
        "final_logit_softcapping": ("final_logit_softcapping", None),
        "query_pre_attn_scalar": ("query_pre_attn_scalar", None),
    },
    extra_gguf={
        "add_sliding_window": "sliding_window",
        "add_attn_logit_softcapping": "attn_logit_softcapping",
        "add_final_logit_softcapping": "final_logit_softcapping",
    },
    scale_embedding=True,
    global_every=2,
    ties_by_default=True,
)

# Phi-3 / Phi-3.5 mini / Phi-4-mini: LLaMA blocks with Q, K and V in one matrix (rows Q, then K, then V) and
# gate/up in one; llama.cpp's phi3 keeps both fused (ATTN_QKV, FFN_UP) and splits them in its graph,
# so they are written as stored. It rotates halves (NEOX) as HF does: nothing is permuted. LongRoPE
# comes as two computed factor tensors (plan.py). llama.cpp runs Phi-3 without its sliding window
# (it only records the config's value, 0 where there is none); so does the reference forward pass.
# Unlike Mistral's, the window does not cap the context here: Phi-3 4k's 2,047 tokens would halve
# the 4,096 every llama.cpp program gives that model (past the window it attends to everything,
# where transformers slides).
# Phi-4-mini is the same row: it rotates 3/4 of each head (partial_rotary_factor 0.75; LongRoPE's
# factors are one per rotated frequency) and ties its output to the embedding (no lm_head).
PHI3 = Architecture(
    gguf.MODEL_ARCH.PHI3,
    required=(T.TOKEN_EMBD, T.OUTPUT_NORM, T.ATTN_NORM, T.ATTN_QKV, T.ATTN_OUT, T.FFN_NORM, T.FFN_UP, T.FFN_DOWN),
    fused_gate_up=True,
    partial_rotary=True,
    extra_config={"sliding_window": ("sliding_window", 0)},
    extra_gguf={"add_sliding_window": "sliding_window"},
)

# Gemma 3 4B-27B: the Gemma 3 language model beside a SigLIP vision tower and its projector
# ("language_model.model.layers.0...", "vision_tower...", "multi_modal_projector..."). The GGUF is
# the text model; llama.cpp writes the vision part to a separate mmproj file, which llamadesk does not.
GEMMA3_MULTIMODAL = replace(
    GEMMA3,
    text_config="text_config",
    # Checkpoints name the text model "language_model.model.layers.0..." (as released); the modules
    # of transformers' Gemma3ForConditionalGeneration, which a PEFT adapter's names follow (and a
    # checkpoint saved from them), are "model.language_model.layers.0...".
    text_prefixes=(("language_model.", ""), ("model.language_model.", "model.")),
    other_towers=("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector."),
)

# HF `architectures[0]` -> how to convert it. SmolLM, TinyLlama and Llama 1/2/3.x all say
# LlamaForCausalLM; Mistral 7B is the same network under another name.
HF_ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": LLAMA_HF,
    "MistralForCausalLM": LLAMA_HF,
    "Qwen2ForCausalLM": QWEN2,
    "Qwen3ForCausalLM": QWEN3,
    "Phi3ForCausalLM": PHI3,
    "Gemma2ForCausalLM": GEMMA2,
    "Gemma3ForCausalLM": GEMMA3,
    "Gemma3ForConditionalGeneration": GEMMA3_MULTIMODAL,
}
META_ARCHITECTURE = "consolidated.*.pth (Meta LLaMA)"

# Hyperparameter -> (config.json key, default). A default of None means "derive it" (see
# model_config.py); REQUIRED means the config is unusable without it.
HF_CONFIG_KEYS: dict[str, tuple[str, object]] = {
    "n_vocab": ("vocab_size", REQUIRED),
    "n_embd": ("hidden_size", REQUIRED),
    "n_layer": ("num_hidden_layers", REQUIRED),
    "n_head": ("num_attention_heads", REQUIRED),
    "n_head_kv": ("num_key_value_heads", None),
    "n_ff": ("intermediate_size", REQUIRED),
    "head_dim": ("head_dim", None),
    "rms_eps": ("rms_norm_eps", 1e-6),
    "context_length": ("max_position_embeddings", 2048),
    "tie_embeddings": ("tie_word_embeddings", False),
}

# Meta's params.json. It does not record the FFN width or (in Llama 1/2) the vocabulary size:
# both are read off the weights.
META_PARAMS_KEYS: dict[str, tuple[str, object]] = {
    "n_vocab": ("vocab_size", None),
    "n_embd": ("dim", REQUIRED),
    "n_layer": ("n_layers", REQUIRED),
    "n_head": ("n_heads", REQUIRED),
    "n_head_kv": ("n_kv_heads", None),
    "rms_eps": ("norm_eps", 1e-5),
    "context_length": ("max_seq_len", 4096),
    "rope_theta": ("rope_theta", 10000.0),
}

# Rotary scaling kinds (`rope_type` in config) and what llama.cpp needs for each.
ROPE_SCALING_TYPES: dict[str, str] = {
    "default": "none",
    "linear": "linear",  # llama.rope.scaling.{type,factor}
    "llama3": "rope_freqs",  # a rope_freqs tensor of per-frequency factors (Llama 3.1/3.2)
    "longrope": "rope_factors",  # rope_factors_long/short tensors given by the config (Phi-3)
}

# Checkpoint tensors that are not weights llama.cpp wants (recomputed from hyperparameters).
SKIPPED_TENSOR_SUFFIXES = ("rotary_emb.inv_freq", "rope.freqs")


def supported_architectures() -> str:
    return ", ".join([*HF_ARCHITECTURES, META_ARCHITECTURE])


def gguf_tensor_name(architecture: str, n_layer: int, hf_name: str) -> str | None:
    """The GGUF name llama.cpp uses for checkpoint tensor `hf_name`, or None when it has none.

    `architecture` is the config's `architectures[0]` ("Qwen2ForCausalLM"), `n_layer` its
    num_hidden_layers, `hf_name` the name in the safetensors ("model.layers.3.self_attn.q_proj.weight",
    a `.bias` too): the answer keeps the suffix ("blk.3.attn_q.weight"). None for an architecture
    llamadesk does not convert, and for a name that family has no GGUF tensor for. A name may also
    be given without suffix (as a LoRA adapter's base module, "model.layers.3.self_attn.q_proj" ->
    "blk.3.attn_q"). The values may still need the family's transform for that kind
    (`HF_ARCHITECTURES[architecture].transforms`), e.g. LLaMA's Q/K rows are reordered.
    """
    family = HF_ARCHITECTURES.get(architecture)
    own_name = None if family is None else family.language_model_name(hf_name)
    if own_name is None:
        return None
    name_map = gguf.get_tensor_name_map(family.gguf_arch, n_layer)
    return name_map.get_name(own_name, try_suffixes=(".weight", ".bias"))
