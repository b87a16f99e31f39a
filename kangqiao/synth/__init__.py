"""A synthetic county medical community (县域医共体) as FHIR R4, for the demo, tests and
benchmarks. See docs/synthetic-county.md."""

from kangqiao.synth.common import RESIDENT_ID_SYSTEM
from kangqiao.synth.generate import GenerationReport, Synthesizer, generate, iter_resources
from kangqiao.synth.idcard import is_valid_resident_id

__all__ = [
    "RESIDENT_ID_SYSTEM",
    "GenerationReport",
    "Synthesizer",
    "generate",
    "is_valid_resident_id",
    "iter_resources",
]
