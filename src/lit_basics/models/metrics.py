"""torchmetrics per task: what LitFNN reports for validation and test."""

from torchmetrics import MetricCollection
from torchmetrics.classification import Accuracy, F1Score
from torchmetrics.regression import MeanSquaredError, R2Score


def make_metrics(task: str, num_classes: int) -> MetricCollection:
    """Accuracy and macro F1 for classification; RMSE and R2 for regression."""
    if task == "regression":
        return MetricCollection({"rmse": MeanSquaredError(squared=False), "r2": R2Score()})
    if num_classes == 2:
        return MetricCollection({"acc": Accuracy(task="binary"), "f1": F1Score(task="binary")})
    return MetricCollection(
        {
            "acc": Accuracy(task="multiclass", num_classes=num_classes),
            "f1": F1Score(task="multiclass", num_classes=num_classes, average="macro"),
        }
    )
