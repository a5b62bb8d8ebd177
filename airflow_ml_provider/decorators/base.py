"""What the ML step decorators share: the call's arguments mapped onto the operator's arguments."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, get_unique_task_id

from airflow_ml_provider.operators.base import MLStepOperator

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class MLDecoratedOperator(DecoratedOperator):
    """
    A TaskFlow task that is one of our step operators: mix it in before the operator class
    (``class _X(MLDecoratedOperator, XOperator)``) and name where the call's arguments go; the subclass
    takes the operator's templated fields and is named ``@task.ml_<step>`` in the UI.

    The decorated function becomes the operator's ``callable_argument``. Two call shapes:

    - ``params_argument`` set (featurize, train): the function takes the data first, then its params.
      The call's first argument (positional, or by the function's first parameter name) is the data
      reference (``data_arguments[0]``); every other argument, by position or name, is a param of
      the function and goes into the operator's ``params_argument`` (merged with the same argument
      given to the decorator; a name in both is an error).
    - ``params_argument`` None (evaluate): the call takes exactly the operator's ``data_arguments``,
      by position or name; the function is called by the operator on what it computes from them.

    The call's arguments are the operator's own (templated) fields, not ``op_args``/``op_kwargs``:
    the operator renders them, resolves the XComs and checks the params against the function's
    signature as it does for a classic task. The task's XCom is the operator's result, so the
    operator decides ``multiple_outputs`` (train: True), whatever the function's return annotation.
    """

    callable_argument: ClassVar[str]
    data_arguments: ClassVar[tuple[str, ...]]
    params_argument: ClassVar[str | None] = None
    custom_operator_name: ClassVar[str] = "@task.ml"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The operator's templated fields (not ``op_args``/``op_kwargs``) and ``@task.ml_<step>`` as its name."""
        super().__init_subclass__(**kwargs)
        operator = next(
            b for b in cls.__mro__ if issubclass(b, MLStepOperator) and not issubclass(b, MLDecoratedOperator)
        )
        cls.template_fields = operator.template_fields
        cls.template_fields_renderers = {cls.params_argument: "py"} if cls.params_argument else {}
        cls.custom_operator_name = f"@task.ml_{operator.step}"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        task_id: str,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not getattr(self, "_BaseOperator__from_mapped", False):
            task_id = get_unique_task_id(task_id, kwargs.get("dag"), kwargs.get("task_group"))
        name = getattr(python_callable, "__name__", task_id)
        arguments = self.call_arguments(name, python_callable, list(op_args or ()), dict(op_kwargs or {}), kwargs)
        kwargs.pop("multiple_outputs", None)
        self.python_callable = python_callable
        self.op_args: Collection[Any] = []
        self.op_kwargs: Mapping[str, Any] = {}
        operator_kwargs: dict[str, Any] = {self.callable_argument: python_callable, **arguments, **kwargs}
        # Past DecoratedOperator.__init__ (which binds the call to the function's signature) to the operator.
        super(DecoratedOperator, self).__init__(task_id=task_id, **operator_kwargs)

    @classmethod
    def call_arguments(
        cls,
        name: str,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        decorator_kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """The operator's arguments for the call ``name(*args, **kwargs)``, or a TypeError naming what is wrong."""
        if cls.params_argument is None:
            return _fixed_call(name, cls.data_arguments, args, kwargs)
        data, params = _data_then_params(name, fn, args, kwargs)
        given = dict(decorator_kwargs.pop(cls.params_argument, None) or {})
        both = sorted(set(given) & set(params))
        if both:
            raise TypeError(f"{name}() got {both} both in the call and in the decorator's {cls.params_argument}")
        return {cls.data_arguments[0]: data, cls.params_argument: {**given, **params}}


def _fixed_call(name: str, names: Sequence[str], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    signature = f"{name}({', '.join(names)})"
    if len(args) > len(names):
        raise TypeError(f"{signature} takes {len(names)} arguments, got {len(args)} positional ones")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"{signature} got an unexpected keyword argument {key!r}")
        if key in bound:
            raise TypeError(f"{signature} got multiple values for argument {key!r}")
        bound[key] = value
    missing = [n for n in names if n not in bound]
    if missing:
        raise TypeError(f"{signature} is missing {', '.join(map(repr, missing))}")
    return bound


def _data_then_params(
    name: str, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The data reference (the first argument) and the function's params (all the others, by name)."""
    parameters = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in parameters if p.kind in _POSITIONAL]
    if not positional:
        raise TypeError(f"{name}() must take the data as its first positional argument")
    first, rest = positional[0], positional[1:]
    if args:
        if first in kwargs:
            raise TypeError(f"{name}() got multiple values for argument {first!r}")
        data = args.pop(0)
    elif first in kwargs:
        data = kwargs.pop(first)
    else:
        raise TypeError(f"{name}() is missing its first argument {first!r}: the data reference (URI or upstream task)")
    if len(args) > len(rest):
        raise TypeError(
            f"{name}() takes {len(positional)} positional arguments but {len(args) + 1} were given "
            "(pass the params by name)"
        )
    for param, value in zip(rest, args, strict=False):
        if param in kwargs:
            raise TypeError(f"{name}() got multiple values for argument {param!r}")
        kwargs[param] = value
    return data, kwargs
