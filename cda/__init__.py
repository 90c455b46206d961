"""cda: dataset distillation by SRe2L, CDA's crop curriculum, and their baselines, on CPU or CUDA."""
from .config import (
    AugConfig,
    CurriculumConfig,
    DataConfig,
    EvalConfig,
    RecoverConfig,
    RelabelConfig,
    RunConfig,
    SqueezeConfig,
    preset,
)

__version__ = "0.1.0"
__all__ = ["AugConfig", "CurriculumConfig", "DataConfig", "EvalConfig", "RecoverConfig", "RelabelConfig",
           "RunConfig", "SqueezeConfig", "preset", "__version__",
           "evaluate_images", "load_image_folder", "FKDLabels", "list_models", "create_model"]

# Imported on first use, so that `import cda` (and the CLI's start) does not load PyTorch.
_LAZY = {"evaluate_images": "evaluator", "load_image_folder": "official_formats", "FKDLabels": "official_formats",
         "list_models": "models", "create_model": "models"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cda' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
