import numpy as np
import pytest
import torch

from probgen.data import check_data, infer_support, parse_support


def test_parse_support():
    assert parse_support("discrete(17)") == ("discrete", 17)
    assert parse_support("binary") == ("binary", 2)
    for bad in ["discrete(1)", "integer", "discrete(x)"]:
        with pytest.raises(ValueError, match="unknown support"):
            parse_support(bad)


def test_infer_support():
    assert infer_support(torch.tensor([[0.0, 1.0]])) == "binary"
    assert infer_support(torch.tensor([[0.0, 16.0]])) == "discrete(17)"
    assert infer_support(torch.tensor([[0.5, 1.0]])) == "real"
    assert infer_support(torch.tensor([[-1.0, 1.0]])) == "real"


def test_check_data_names_the_problem():
    with pytest.raises(ValueError, match=r"value 0.5 .* outside the support 'binary'"):
        check_data(torch.tensor([[0.0, 0.5]]), "binary", (2,))
    with pytest.raises(ValueError, match=r"shape \(3, 2\); expected \(N, 4\)"):
        check_data(torch.zeros(3, 2), "real", (4,))
    with pytest.raises(ValueError, match="NaN or inf"):
        check_data(torch.tensor([[0.0, float("inf")]]), "real", (2,))
    with pytest.raises(ValueError, match="outside the support 'discrete"):
        check_data(torch.tensor([[17.0]]), "discrete(17)", (1,))
    with pytest.raises(TypeError, match="got list"):
        check_data([[0.0]], "real", (1,))
    out = check_data(np.array([[1, 0]]), "binary", (2,))
    assert out.dtype.is_floating_point
