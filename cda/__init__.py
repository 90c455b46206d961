"""cda: dataset distillation by SRe2L, CDA's crop curriculum, and their baselines, on CPU or CUDA."""
from .config import (AugConfig, CurriculumConfig, DataConfig, EvalConfig, RecoverConfig, RelabelConfig, RunConfig,
                     SqueezeConfig, preset)

__version__ = "0.1.0"
__all__ = ["AugConfig", "CurriculumConfig", "DataConfig", "EvalConfig", "RecoverConfig", "RelabelConfig",
           "RunConfig", "SqueezeConfig", "preset", "__version__"]
