"""The bad-input table: each case, the command it runs, and the one-line error it must give.

tests/test_reliability.py runs every row; `python -m tests.bad_input_cases` prints the README's
"Reliability" table from the same rows (`make docs` writes it into the README).
"""

from lit_basics.data import DATAMODULES
from lit_basics.models.activations import ACTIVATIONS
from lit_basics.models.fnn import INITS
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import OPTIMIZERS

# (case, command, arguments, expected text of the one-line error). In arguments, {cfg:NAME} is
# configs/NAME.yaml, {tmp} the test's folder (files named there are written by the test).
CASES = [
    ("unknown dataset", "fit", "--config {cfg:iris} --data cifar", f"unknown dataset 'cifar'; allowed: {', '.join(sorted(DATAMODULES))}"),
    ("unknown activation", "fit", "--config {cfg:moons} --model.activation swish",
     f"unknown activation 'swish'; allowed: {', '.join(sorted(ACTIVATIONS))}"),
    ("unknown loss", "fit", "--config {cfg:moons} --model.loss kl", f"unknown loss 'kl'; allowed: {', '.join(sorted(LOSSES))}"),
    ("unknown optimizer", "fit", "--config {cfg:moons} --model.optimizer lbfgs",
     f"unknown optimizer 'lbfgs'; allowed: {', '.join(sorted(OPTIMIZERS))}"),
    ("unknown weight init", "fit", "--config {cfg:moons} --model.init uniform",
     f"unknown init 'uniform'; allowed: {', '.join(sorted(INITS))}"),
    ("unknown scheduler", "fit", "--config {cfg:moons} --model.scheduler warmup", "unknown scheduler 'warmup'; allowed:"),
    ("unknown sampler", "tune", "--config {tmp}/search.yaml --sampler anneal",
     "unknown sampler 'anneal'; allowed: grid, random, tpe"),
    ("lr = 0", "fit", "--config {cfg:moons} --model.lr 0", "lr=0.0 must be > 0"),
    ("lr < 0", "fit", "--config {cfg:moons} --model.lr -0.1", "lr=-0.1 must be > 0"),
    ("dropout = 1", "fit", "--config {cfg:moons} --model.dropout 1.0", "dropout=1.0 is outside the allowed range [0, 1)"),
    ("dropout < 0", "fit", "--config {cfg:moons} --model.dropout -0.2", "dropout=-0.2 is outside the allowed range [0, 1)"),
    ("leaky ReLU alpha < 0", "fit", "--config {cfg:moons} --model.leaky_relu_alpha -1", "leaky_relu_alpha=-1.0 must be >= 0"),
    ("empty hidden sizes", "fit", "--config {cfg:moons} --model.hidden_sizes []", "hidden_sizes=[] must be a non-empty list"),
    ("non-positive hidden size", "fit", "--config {cfg:moons} --model.hidden_sizes [16,0]",
     "hidden_sizes=[16, 0] has non-positive sizes [0]"),
    ("batch size 0", "fit", "--config {cfg:moons} --data.batch_size 0", "batch_size=0 and eval_batch_size=1024 must be >= 1"),
    ("k-folds < 2", "tune", "--config {tmp}/search.yaml --folds 1", "folds=1 must be >= 2"),
    ("ensemble < 0", "tune", "--config {tmp}/search.yaml --ensemble -1",
     "ensemble=-1 must be an integer >= 0 (0: no ensemble; K: the K best configurations' fold models)"),
    ("ensemble larger than the search", "tune", "--config {tmp}/search.yaml --ensemble 3",
     "ensemble=3 is more than the 2 configurations this search trains; use ensemble <= 2"),
    ("unknown ensemble selection", "tune", "--config {tmp}/search.yaml --ensemble 2 --ensemble-selection best",
     "unknown ensemble_selection 'best'; allowed: greedy, top"),
    ("ensemble selection without an ensemble", "tune", "--config {tmp}/search.yaml --ensemble-selection greedy",
     "ensemble_selection='greedy' needs ensemble >= 1"),
    ("pack of no members", "tune", "--config {tmp}/search.yaml --pack 2 --ensemble 0",
     "--pack needs --ensemble >= 1 (the members it averages; default 8)"),
    ("fit of an ensemble config", "fit", "--config {cfg:iris} --config {tmp}/ensemble_config.yaml",
     "fit: this config's model.net is an ensemble of trained networks"),
    ("pack of no configurations", "tune", "--config {tmp}/search.yaml --pack 0", "--pack 0 must be >= 1"),
    ("pack on a regression target", "tune", "--config {tmp}/batched_regression.yaml --pack 2",
     "--pack: the batched engine supports in-memory classification data"),
    ("pack with a k-fold flag", "tune", "--config {tmp}/search.yaml --pack 2 --engine lightning --resume",
     "--pack does not take --resume, --engine lightning"),
    ("fold blocks without folds", "fit", "--config {cfg:iris} --data.fold_features true",
     "fold_features=true needs folds >= 2 and fold=-1"),
    ("k-folds > smallest class", "tune", "--config {tmp}/search.yaml --folds 60",
     "folds=60 is larger than the smallest class of the training portion"),
    ("hinge loss on a regression target", "fit", "--config {cfg:diabetes} --model.loss hinge",
     "loss 'hinge' does not fit task 'regression'; allowed: mse"),
    ("BCE/cross-entropy on a regression target", "fit", "--config {cfg:diabetes} --model.loss cross_entropy",
     "loss 'cross_entropy' does not fit task 'regression'; allowed: mse"),
    ("num_classes set against the data", "fit", "--config {cfg:iris} --model.num_classes 5",
     'Linked "model.num_classes" must be given via "data.num_classes"'),
    ("CSV file missing", "fit", "--config {cfg:csv} --data.path {tmp}/absent.csv", "csv: file '{tmp}/absent.csv' does not exist"),
    ("CSV file empty", "fit", "--config {cfg:csv} --data.path {tmp}/empty.csv", "is empty"),
    ("CSV label column missing", "fit", "--config {cfg:csv} --data.path {tmp}/good.csv --data.label_column species",
     "label column 'species' not found; columns are: a, b, label"),
    ("CSV inf value", "fit", "--config {cfg:csv} --data.path {tmp}/inf.csv",
     "feature column 'a' has an inf value in data row 3"),
    ("CSV header with fewer names than fields", "fit", "--config {cfg:csv} --data.path {tmp}/short_header.csv",
     "has 3 names but data row 1 has 4 fields; fix the header, or skip a first line that is not one"),
    ("CSV duplicate column names", "fit", "--config {cfg:csv} --data.path {tmp}/duplicate.csv",
     "column name 'a' appears twice in the header"),
    ("CSV label also listed as a feature", "fit", "--config {cfg:csv} --data.path {tmp}/good.csv "
     "--data.feature_columns [a,label]", "the label column 'label' is also listed in feature_columns"),
    ("CSV float label under classification", "fit", "--config {cfg:csv} --data.path {tmp}/float_label.csv",
     "30 distinct float values, too many classes; for a numeric target use --data.task regression"),
    ("CSV all-missing feature column", "fit", "--config {cfg:csv} --data.path {tmp}/gaps.csv "
     "--data.feature_columns [a,empty]", "feature column 'empty' cannot inform a model: every value is missing"),
    ("CSV constant feature column", "fit", "--config {cfg:csv} --data.path {tmp}/gaps.csv "
     "--data.feature_columns [a,same]", "feature column 'same' cannot inform a model: one value (7)"),
    ("CSV numbers with decimal commas", "fit", "--config {cfg:csv} --data.path {tmp}/decimal_comma.csv",
     "column 'a' holds numbers pandas did not read ('0,5' in data row 1); set --data.decimal ','"),
    ("CSV numbers with '?' for missing", "fit", "--config {cfg:csv} --data.path {tmp}/question_marks.csv",
     "column 'a' holds numbers but also '?' (4x), first in data row 3; mark them missing with --data.na_values"),
    ("CSV delimiter that leaves one column", "fit", "--config {cfg:csv} --data.path {tmp}/spaces.csv",
     "splits into one column with the sniffed delimiter ','; set --data.sep"),
    ("MNIST files absent, offline", "fit", "--config {cfg:mnist} --data.root {tmp}/nomnist --data.download false",
     "mnist: files not found and download is off; put the four uncompressed IDX files"),
    ("YAML that does not parse", "fit", "--config {tmp}/broken.yaml", "Problems parsing config"),
    ("config path that does not exist", "fit", "--config {tmp}/nowhere.yaml", "File does not exist"),
    ("key that is not an argument", "fit", "--config {cfg:moons} --model.activaton relu",
     "--model.activaton is not an argument; did you mean --model.activation?"),
    ("truncated checkpoint", "test", "--config {cfg:iris} --ckpt_path {tmp}/truncated.ckpt", "is truncated or corrupt"),
    ("checkpoint that does not exist", "test", "--config {cfg:iris} --ckpt_path {tmp}/absent.ckpt", "does not exist"),
    ("checkpoint of another data set", "test", "--config {cfg:digits} --ckpt_path {tmp}/iris.ckpt",
     "was trained on iris (classification; 4 features; classes 0, 1, 2); this run's data is digits"),
    ("checkpoint of another data set with the same shape", "test",
     "--config {cfg:csv} --data.path {tmp}/four.csv --ckpt_path {tmp}/iris.ckpt",
     "was trained on iris (classification; 4 features; classes 0, 1, 2); this run's data is csv file four.csv"),
    ("checkpoint of another task", "test",
     "--config {cfg:csv} --data.path {tmp}/four.csv --data.task regression --ckpt_path {tmp}/iris.ckpt",
     "was trained on iris (classification; 4 features; classes 0, 1, 2); this run's data is csv file four.csv header"),
    ("checkpoint of another architecture, transfer allowed", "test",
     "--config {cfg:digits} --ckpt_path {tmp}/iris.ckpt --allow_transfer=true",
     "is for another architecture: net.blocks.0.linear.weight is torch.Size([16, 4]) there but torch.Size([16, 64]) here"),
    ("checkpoint tested on another split of its data set", "test",
     "--config {cfg:iris} --ckpt_path {tmp}/iris.ckpt --data.init_args.seed 0",
     "was trained on another split of iris (seed=42 there, 0 here): its test rows could include rows it trained on"),
    ("checkpoint of an older version (no data identity)", "test", "--config {cfg:iris} --ckpt_path {tmp}/old.ckpt",
     "records no data identity (written by an older lit-basics)"),
    ("checkpoint holding pickled objects", "test", "--config {cfg:iris} --ckpt_path {tmp}/objects.ckpt",
     "holds objects other than tensors and plain values"),
    ("checkpoint with flipped weight bytes", "test", "--config {cfg:iris} --ckpt_path {tmp}/flipped.ckpt",
     "checkpoint '{tmp}/flipped.ckpt' is corrupt: its tensors do not match the digest it recorded"),
    ("checkpoint whose weights are NaN (digest intact)", "test", "--config {cfg:iris} --ckpt_path {tmp}/nan.ckpt",
     "test of checkpoint '{tmp}/nan.ckpt' gave non-finite results (test/loss=nan"),
    ("checkpoint path that is a folder", "test", "--config {cfg:iris} --ckpt_path {tmp}/afolder",
     "is a directory, not a .ckpt file"),
    ("test without a checkpoint", "test", "--config {cfg:iris}", "test needs --ckpt_path: without one the model is untrained"),
    ("predict without a checkpoint", "predict", "--config {cfg:iris}",
     "predict needs --ckpt_path: without one the model is untrained"),
    ("resume a run past its end", "fit", "--config {cfg:iris} --ckpt_path {tmp}/iris.ckpt --trainer.max_epochs 1",
     "already finished at epoch"),
    ("max_epochs = 0", "fit", "--config {cfg:moons} --trainer.max_epochs 0", "--trainer.max_epochs=0 must be >= 1"),
    ("max_epochs = -1 without a stop rule", "fit", "--config {cfg:moons} --trainer.max_epochs -1 --trainer.callbacks=[]",
     "--trainer.max_epochs=-1 must be >= 1 (or -1 with max_steps, max_time or early stopping)"),
    ("min_epochs > max_epochs", "fit", "--config {cfg:moons} --trainer.min_epochs 10 --trainer.max_epochs 3",
     "--trainer.min_epochs=10 is larger than --trainer.max_epochs=3; lower min_epochs or raise max_epochs"),
    ("min_epochs with max_time", "fit", "--config {cfg:moons} --trainer.min_epochs 5 --trainer.max_time 00:00:00:05",
     "--trainer.min_epochs=5 with --trainer.max_time=00:00:00:05: Lightning would train past max_time"),
    ("accelerator the machine lacks", "fit", "--config {cfg:moons} --trainer.accelerator mps",
     "--trainer.accelerator=mps: this machine has no MPS that torch can use; use --trainer.accelerator auto or cpu"),
    ("negative seed", "fit", "--config {cfg:moons} --seed_everything -5",
     "--seed_everything=-5 must be an integer in [0, 4294967295], or true (a random seed) / false (none)"),
    ("YAML alias bomb in a config file", "fit", "--config {cfg:moons} --config {tmp}/bomb.yaml",
     "config file '{tmp}/bomb.yaml' expands to more than 200000 YAML nodes"),
    ("YAML alias bomb in a search file", "tune", "--config {tmp}/bomb_search.yaml",
     "search config '{tmp}/bomb_search.yaml' expands to more than 200000 YAML nodes"),
    ("hidden layer too large for memory", "fit", "--config {cfg:moons} --model.hidden_sizes [100000000]",
     "hidden_sizes=[100000000] needs at least"),
    ("logs folder that is a file", "fit", "--config {cfg:moons} --trainer.logger.init_args.save_dir {tmp}/afile",
     "logs folder '{tmp}/afile' is a file, not a folder"),
    ("a file where logs/<name> should be", "fit",
     "--config {cfg:moons} --trainer.logger.init_args.save_dir {tmp} --trainer.logger.init_args.name afile",
     "run name folder '{tmp}/afile' is a file, not a folder"),
    ("a file where a run's checkpoints/ should be", "fit",
     "--config {cfg:moons} --trainer.logger.init_args.save_dir {tmp}/runs --trainer.logger.init_args.version 0",
     "checkpoints folder '{tmp}/runs/moons/version_0/checkpoints' is a file, not a folder"),
    ("a file where reports/<name> should be (compare)", "compare", "--config {tmp}/s_experiment.yaml --reports {tmp}/rep",
     "report folder '{tmp}/rep/s' is a file, not a folder"),
    ("a file where reports/<name> should be (tune)", "tune", "--config {tmp}/search.yaml --reports {tmp}/rep",
     "report folder '{tmp}/rep/s' is a file, not a folder"),
    ("run name that leaves logs/", "fit", "--config {cfg:moons} --trainer.logger.init_args.name ../escape",
     "--trainer.logger.init_args.name '../escape' would write outside its output folder"),
    ("experiment name that leaves reports/", "compare", "--config {tmp}/escape_experiment.yaml",
     "experiment name '../escape' would write outside its output folder"),
    ("search name that leaves reports/", "tune", "--config {tmp}/search.yaml --name ../escape",
     "search name '../escape' would write outside its output folder"),
    ("search resumed with another search space", "tune",
     "--config {tmp}/search.yaml --resume --storage sqlite:///{tmp}/other_space.db",
     "--resume: study 's' was made with space width=[4, 16], this search has [4, 8]; start a new search with --name"),
    ("search resumed from a study of an older version", "tune",
     "--config {tmp}/search.yaml --resume --storage sqlite:///{tmp}/old_study.db",
     "--resume: study 's' records no search settings (made by an older lit-basics)"),
    ("search space low > high", "tune", "--config {tmp}/lowhigh.yaml", "search dimension 'model.lr' has low=0.1 > high=0.01"),
    ("search space empty choice list", "tune", "--config {tmp}/empty_choices.yaml",
     "search dimension 'width' has an empty choice list"),
    ("batched search of an injected net vmap cannot batch", "tune", "--config {tmp}/unbatchable.yaml",
     "the batched engine cannot train DataDependent as stacked copies"),
    ("batched search of a regression data set", "tune", "--config {tmp}/batched_regression.yaml",
     "use --engine lightning"),
    ("batched search with a trainer setting it would not apply", "tune",
     "--config {tmp}/search.yaml --set trainer.min_epochs=1",
     "the batched engine does not apply trainer.min_epochs=1 (allowed: 0); use --engine lightning"),
    ("batched search with drop_last", "tune", "--config {tmp}/search.yaml --set data.init_args.drop_last=true",
     "the batched engine does not apply data.init_args.drop_last=True"),
    ("search with max_epochs 0", "tune", "--config {tmp}/search.yaml --set trainer.max_epochs=0",
     "max_epochs=0 must be >= 1"),
    ("batched search with max_epochs -1", "tune", "--config {tmp}/search.yaml --set trainer.max_epochs=-1",
     "the batched engine trains a fixed number of epochs: max_epochs=-1 must be >= 1"),
    ("search storage URL that cannot be opened", "tune", "--config {tmp}/search.yaml --storage nosuchdb://host/db",
     "storage 'nosuchdb://host/db' cannot be opened: Can't load plugin: sqlalchemy.dialects:nosuchdb"),
    ("experiment with an unknown variant key", "compare", "--config {tmp}/typo_experiment.yaml",
     "variant 'typo': --model.activaton is not an argument; did you mean --model.activation?"),
]



def _table(rows: int = 30, label=lambda i: i % 3, extra: str = "", cell=lambda i: "") -> str:
    lines = [f"a,b,label{extra}"] + [f"{(i * 7) % 11 / 10},{(i * 5) % 13 / 10},{label(i)}{cell(i)}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _xlsx() -> bytes:
    import io
    import zipfile

    book = io.BytesIO()
    with zipfile.ZipFile(book, "w") as parts:  # the parts every .xlsx workbook has
        parts.writestr("[Content_Types].xml", "<Types/>")
        parts.writestr("xl/workbook.xml", "<workbook/>")
    return book.getvalue()


# Files of the table tests (issue 21) the rows below name; tests/test_reliability.py writes them into {tmp}.
CASE_FILES: dict[str, bytes] = {
    "price.csv": _table(200, label=lambda i: 300 + (i * 7919) % 20000).encode(),
    "rare_class.csv": _table(label=lambda i: "wolf" if i == 0 else ["cat", "dog", "fox"][i % 3]).encode(),
    "nul.csv": _table(extra=",colour", cell=lambda i: ",red\x00" if i == 6 else ",red").encode(),
    "label_copy.csv": _table(extra=",code", cell=lambda i: f",{10 * (i % 3)}").encode(),
    "gzipped.csv": __import__("gzip").compress(_table().encode(), mtime=0),
    "workbook.csv": _xlsx(),
    "bom.csv": b"\xef\xbb\xbf" + _table().encode(),
}

CASES += [
    ("CSV integer quantity as a classification label", "fit", "--config {cfg:csv} --data.path {tmp}/price.csv",
     "seen once: a quantity, not classes; for a numeric target use --data.task regression"),
    ("CSV class too small to split", "fit", "--config {cfg:csv} --data.path {tmp}/rare_class.csv",
     "classes with too few rows to stratify into train, val and test: 'wolf' (1 row)"),
    ("CSV control character (NUL) in a cell", "fit", "--config {cfg:csv} --data.path {tmp}/nul.csv",
     "column 'colour' holds the control character '\\x00' in data row 7"),
    ("CSV feature that recodes the label", "fit", "--config {cfg:csv} --data.path {tmp}/label_copy.csv",
     "feature column 'code' is a one-to-one recoding of the label 'label': a model would read the answer from it"),
    ("CSV gzip file named .csv", "fit", "--config {cfg:csv} --data.path {tmp}/gzipped.csv",
     "is a gzip-compressed file, not CSV text (its first bytes say so); decompress it first (gunzip)"),
    ("CSV Excel workbook named .csv", "fit", "--config {cfg:csv} --data.path {tmp}/workbook.csv",
     "is an Excel workbook (.xlsx), not CSV text (its first bytes say so); save the sheet as CSV"),
    ("CSV duplicates setting unknown", "fit", "--config {cfg:csv} --data.path {tmp}/good.csv --data.duplicates remove",
     "unknown duplicates 'remove'; allowed: drop, keep"),
    ("CSV BOM kept by --data.encoding utf-8", "fit", "--config {cfg:csv} --data.path {tmp}/bom.csv --data.encoding utf-8",
     "starts with a UTF-8 byte-order mark (BOM) that --data.encoding 'utf-8' keeps as part of the first column name"),
]


def render_markdown() -> str:
    lines = [f"{len(CASES)} bad inputs, each run through the real command by tests/test_reliability.py:", "",
             "| bad input | command | one-line error (exit status 2, nothing left behind) |", "|---|---|---|"]
    for case, command, args, message in CASES:
        script = {"fit": "train.py fit", "test": "train.py test", "predict": "train.py predict", "tune": "tune.py",
                  "compare": "compare.py"}[command]
        shown = args.replace("{tmp}/", "").replace("{cfg:", "configs/").replace("}", ".yaml")
        lines.append(f"| {case} | `{script} {shown}` | `{message.replace('{tmp}/', '')}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
