"""Every generated table of the README, from the registries: components, how each engine treats each
hyperparameter, and the bad-input table (from tests/bad_input_cases.py).

`make docs` (`python -m lit_basics.readme_tables`, from the repository root) rewrites them all, in
docs/models.md and docs/reliability.md;
tests fail when the README's copy differs, so a new activation, loss, optimizer, init, architecture option,
data set or refused input appears in the documentation or the suite says so.
"""

from lit_basics.engine import hyperparameters
from lit_basics.engine.kernels import ACTIVATION_KERNELS, OPTIMIZER_UPDATES
from lit_basics.models.activations import ACTIVATIONS
from lit_basics.models.fnn import INITS
from lit_basics.models.hparams import NORMS
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import OPTIMIZERS


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
    rows += [f"| norm | `{name}` | {what} | {'yes, fast path' if name == 'none' else 'yes, generic path'} |"
             for name, what in NORMS.items()]
    table = ["| hyperparameter | batched engine |", "|---|---|"]
    table += [f"| `model.{name}` | {kind} |" for name, kind in hyperparameters.LITFNN_HYPERPARAMETERS.items()]
    table += [f"| `{key}` | {kind} |" for key, (_, kind) in hyperparameters.SEARCHABLE_SETTINGS.items()]
    table += [f"| `{key}` | refused unless {' or '.join(repr(a) for a in allowed if a is not None)} |"
              for key, allowed in hyperparameters.UNSUPPORTED_SETTINGS.items()]
    return "\n".join(rows) + "\n\n" + "\n".join(table)


def readme_with_components(readme: str) -> str:
    """`readme` with the text between the components markers replaced by the current tables."""
    return _replace(readme, "components", components_markdown())


def _replace(readme: str, section: str, text: str) -> str:
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    head, tail = readme.index(start) + len(start), readme.index(end)
    return readme[:head] + "\n" + text + "\n" + readme[tail:]


PAGES = {"components": "docs/models.md", "reliability": "docs/reliability.md"}  # where each generated table lives


def section_text(section: str) -> str:
    """The current text of a generated section (the reliability table needs the repository's tests/)."""
    if section == "components":
        return components_markdown()
    from tests.bad_input_cases import render_markdown

    return render_markdown()


def regenerate(root: str = ".") -> list[str]:
    """Rewrite every generated section in its page under `root`; the pages written."""
    from pathlib import Path

    for section, page in PAGES.items():
        path = Path(root) / page
        path.write_text(_replace(path.read_text(), section, section_text(section)))
    return list(PAGES.values())


if __name__ == "__main__":
    import sys

    print("regenerated " + ", ".join(regenerate(sys.argv[1] if len(sys.argv) > 1 else ".")))
