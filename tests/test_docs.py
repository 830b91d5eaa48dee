"""The worked example of docs/adding-a-model.md runs as written, and the docs point nowhere
outside the repository."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_adding_a_model_example_runs(capsys):
    blocks = _python_blocks(ROOT / "docs" / "adding-a-model.md")
    assert len(blocks) == 1
    namespace: dict = {"__name__": "adding_a_model_example"}
    exec(compile(blocks[0], "docs/adding-a-model.md", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "[exact, exact]" in printed and "closed form" in printed
    from probgen.models import MODELS

    assert MODELS.pop("isotropic-gaussian").cls.__name__ == "IsotropicGaussian"


@pytest.mark.parametrize("name", ["README.md", "docs/architecture.md", "docs/adding-a-model.md"])
def test_no_pointer_outside_the_repository(name):
    text = (ROOT / name).read_text()
    outside = ["../" + "shared", "DESIGN" + ".md"]  # spelled apart so this file does not match itself
    assert not [pointer for pointer in outside if pointer in text]
