"""DD-Ranking's scores of a distilled set, from accuracies alone (IOR, HLR, LRS): arithmetic that the
verdicts and the evaluator share, so that neither loads the other (nor the training stack)."""
from __future__ import annotations

import math


def improvement_over_random(top1: float, random_real_top1: float) -> float:
    """DD-Ranking's IOR as a fraction: the set's top-1 (%) minus that of random real images at the same
    IPC, labels and recipe (%), divided by 100."""
    return (top1 - random_real_top1) / 100


def hard_label_recovery(full_data_top1: float, hard_top1: float) -> float:
    """DD-Ranking's HLR as a fraction: full-data top-1 (%) minus the set's top-1 with hard labels (%),
    divided by 100."""
    return (full_data_top1 - hard_top1) / 100


def label_robust_score(ior: float, hlr: float, weight: float = 0.5) -> float:
    """DD-Ranking's LRS on fractions: (e^a - e^-1) / (e - e^-1), a = weight IOR - (1 - weight) HLR, in [0, 1]
    for IOR and HLR in [-1, 1]."""
    a = weight * ior - (1 - weight) * hlr
    return (math.exp(a) - math.exp(-1)) / (math.e - math.exp(-1))
