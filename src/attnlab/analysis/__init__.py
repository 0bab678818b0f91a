"""What the attention learned: the SENet excitation study and stage ablation, the ECA kernel-size sweep, and
class activation maps through grad-cam (``attnlab analyze ...``)."""

from attnlab.analysis.gates import (
    attention_stage_map,
    attention_switched_off,
    gate_values,
    last_block_per_stage,
    record_gates,
)

__all__ = [
    "attention_stage_map",
    "attention_switched_off",
    "gate_values",
    "last_block_per_stage",
    "record_gates",
]
