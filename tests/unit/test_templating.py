"""templating.py: telling literal arguments from templated ones, and reading templated numbers rendered as text."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ml_provider.templating import (
    coerce_numbers,
    coerce_to_annotations,
    template_paths,
    templated_keys,
)


def test_template_paths_find_every_jinja_string() -> None:
    policy = {
        "metrics": {"accuracy": {"threshold": "{{ params.min_accuracy }}", "min_absolute_change": -0.01}},
        "required_suites": ["raw", "{% if x %}a{% endif %}"],
        "first_version": "allow",
    }
    assert template_paths(policy) == [("metrics", "accuracy", "threshold"), ("required_suites", 1)]
    assert template_paths({"a": 1, "b": [True, None, "plain text"]}) == []


def test_a_value_resolved_at_run_time_makes_the_whole_unknowable() -> None:
    class XComArgLike:  # any object that is not plain data: Airflow resolves it at run time
        pass

    assert template_paths({"metrics": XComArgLike()}) is None
    assert template_paths(XComArgLike()) is None


def test_coerce_numbers_only_at_the_given_paths() -> None:
    rendered = {"metrics": {"accuracy": {"threshold": "0.9"}}, "max_evidence_age_seconds": " 3600 ", "name": "0.5"}
    paths = [("metrics", "accuracy", "threshold"), ("max_evidence_age_seconds",)]
    assert coerce_numbers(rendered, paths) == {
        "metrics": {"accuracy": {"threshold": 0.9}},
        "max_evidence_age_seconds": 3600.0,
        "name": "0.5",  # not templated: left as the author wrote it
    }
    # text that is not a (finite) number is left for validation to refuse
    assert coerce_numbers({"t": "high"}, [("t",)]) == {"t": "high"}
    assert coerce_numbers({"t": "nan"}, [("t",)]) == {"t": "nan"}
    assert coerce_numbers({"t": 0.9}, [("t",)]) == {"t": 0.9}  # native rendering: already a number


def _train(df: Any, alpha: float = 1.0, depth: int = 3, scale: bool = False, name: str = "x", loose=None) -> Any:
    return None


def test_templated_params_take_the_annotated_type() -> None:
    params = {"alpha": "0.5", "depth": "7", "scale": "True", "name": "12", "loose": "3"}
    out = coerce_to_annotations(_train, params, templated_keys({k: "{{ x }}" for k in params}), "train")
    assert out == {"alpha": 0.5, "depth": 7, "scale": True, "name": "12", "loose": "3"}
    # only templated params: a literal string stays the author's string
    assert coerce_to_annotations(_train, {"alpha": "0.5"}, frozenset(), "train") == {"alpha": "0.5"}


@pytest.mark.parametrize(
    ("name", "text", "kind"), [("alpha", "high", "float"), ("depth", "7.5", "int"), ("scale", "1", "bool")]
)
def test_a_templated_param_that_does_not_spell_its_type_is_named(name: str, text: str, kind: str) -> None:
    with pytest.raises(TypeError) as excinfo:
        coerce_to_annotations(_train, {name: text}, {name}, "train")
    message = str(excinfo.value)
    assert f"train parameter {name!r} is annotated {kind}" in message and repr(text) in message


def test_templated_keys_are_whole_value_templates() -> None:
    assert templated_keys({"a": "{{ params.a }}", "b": 1, "c": "plain", "d": ["{{ x }}"]}) == {"a"}
