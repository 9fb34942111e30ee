"""The FNN, its LightningModule and the named parts they are built from."""

from lit_basics.models.activations import ACTIVATIONS, make_activation
from lit_basics.models.fnn import FNN
from lit_basics.models.lit_module import LitFNN, load_model
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import OPTIMIZERS, SCHEDULERS

__all__ = ["ACTIVATIONS", "FNN", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "LitFNN", "load_model", "make_activation"]
