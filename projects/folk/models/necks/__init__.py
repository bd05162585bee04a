from .dino_projector import DINOProjector

__all__ = ['DINOProjector']
