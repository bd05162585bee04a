from .distill_loss import DistillLoss
from .frequency_loss import FrequencyLoss

__all__ = ['DistillLoss', 'FrequencyLoss']
