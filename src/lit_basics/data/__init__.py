"""One DataModule per dataset family, and a registry from short names to classes."""

from lightning import LightningDataModule

from lit_basics.data.base import ArrayDataModule
from lit_basics.data.csv_file import CSVDataModule
from lit_basics.data.mnist import MNISTDataModule
from lit_basics.data.synthetic import (
    CirclesDataModule,
    ClassificationDataModule,
    MoonsDataModule,
    XORDataModule,
)
from lit_basics.data.tabular import (
    BreastCancerDataModule,
    DiabetesDataModule,
    DigitsDataModule,
    IrisDataModule,
    WineDataModule,
)
from lit_basics.errors import check_choice

DATAMODULES: dict[str, type[ArrayDataModule]] = {
    cls.name: cls
    for cls in (
        XORDataModule,
        MoonsDataModule,
        CirclesDataModule,
        ClassificationDataModule,
        IrisDataModule,
        DigitsDataModule,
        BreastCancerDataModule,
        WineDataModule,
        DiabetesDataModule,
        MNISTDataModule,
        CSVDataModule,
    )
}


def make_datamodule(name: str, **kwargs) -> LightningDataModule:
    """Build the DataModule registered as `name` (e.g. "moons", "digits", "mnist")."""
    check_choice("dataset", name, DATAMODULES)
    return DATAMODULES[name](**kwargs)


__all__ = ["DATAMODULES", "ArrayDataModule", "make_datamodule", *(c.__name__ for c in DATAMODULES.values())]
