"""Fast paths for small networks: in-memory batching (and, later, many models at once)."""

from lit_basics.engine.batching import TensorBatchLoader

__all__ = ["TensorBatchLoader"]
