"""torchmetrics per task: what LitFNN reports for validation and test."""

from torchmetrics import MetricCollection
from torchmetrics.classification import Accuracy, F1Score
from torchmetrics.regression import MeanSquaredError, R2Score


def make_metrics(task: str, num_classes: int) -> MetricCollection:
    """Accuracy and macro F1 for classification; RMSE and R2 for regression.

    Without argument validation: the inputs are our own predictions and labels, already checked
    by the DataModule, and the checks (a `unique` over the batch and more) cost a quarter of an
    epoch's metric time on small data.
    """
    if task == "regression":
        return MetricCollection({"rmse": MeanSquaredError(squared=False), "r2": R2Score()})
    if num_classes == 2:
        return MetricCollection({"acc": Accuracy(task="binary", validate_args=False),
                                 "f1": F1Score(task="binary", validate_args=False)})
    return MetricCollection(
        {
            "acc": Accuracy(task="multiclass", num_classes=num_classes, validate_args=False),
            "f1": F1Score(task="multiclass", num_classes=num_classes, average="macro", validate_args=False),
        }
    )
