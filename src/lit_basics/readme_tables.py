"""The README's tables of components and of how each engine treats each hyperparameter, from the registries.

`make components-doc` writes them into README.md; a test fails when the README's copy differs, so a
new activation, loss, optimizer or init appears in the documentation or the suite says so.
"""

from lit_basics.engine import hyperparameters
from lit_basics.engine.kernels import ACTIVATION_KERNELS, OPTIMIZER_UPDATES
from lit_basics.models.activations import ACTIVATIONS
from lit_basics.models.fnn import INITS
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import OPTIMIZERS

START, END = "<!-- components:start -->", "<!-- components:end -->"


def _path(name: str) -> str:
    return "yes, fast path (hand-written kernel)" if name in ACTIVATION_KERNELS else "yes, generic path"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no (refused with one line)"


def components_markdown() -> str:
    """Markdown tables: activations, losses, optimizers, inits; then the batched engine's hyperparameter table."""
    rows = ["| component | name | what it is | batched engine |", "|---|---|---|---|"]
    rows += [f"| activation | `{a.name}` | {a.description} | {_path(a.name)} |" for a in ACTIVATIONS.values()]
    rows += [f"| loss | `{loss.name}` | {loss.description} ({', '.join(loss.tasks)}) | "
             f"yes{', closed-form gradient' if loss.with_logit_grad else ''} |" for loss in LOSSES.values()]
    for o in OPTIMIZERS.values():
        own = ", ".join(f"`{k}`={v:g}" for k, v in o.defaults.items()) or "none"
        rows.append(f"| optimizer | `{o.name}` | {o.description}; own hyperparameters: {own} | "
                    f"{_yes(o.name in OPTIMIZER_UPDATES)} |")
    rows += [f"| init | `{i.name}` | {i.description} | yes |" for i in INITS.values()]
    table = ["| hyperparameter | batched engine |", "|---|---|"]
    table += [f"| `model.{name}` | {kind} |" for name, kind in hyperparameters.LITFNN_HYPERPARAMETERS.items()]
    table += [f"| `{key}` | {kind} |" for key, (_, kind) in hyperparameters.SEARCHABLE_SETTINGS.items()]
    table += [f"| `{key}` | refused unless {' or '.join(repr(a) for a in allowed if a is not None)} |"
              for key, allowed in hyperparameters.UNSUPPORTED_SETTINGS.items()]
    return "\n".join(rows) + "\n\n" + "\n".join(table)


def readme_with_components(readme: str) -> str:
    """`readme` with the text between the components markers replaced by the current tables."""
    start, end = readme.index(START) + len(START), readme.index(END)
    return readme[:start] + "\n" + components_markdown() + "\n" + readme[end:]
