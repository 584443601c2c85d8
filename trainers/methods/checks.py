"""Checks that method config dataclasses run in `__post_init__`. Torch-free."""

from typing import Any

__all__ = ["MethodConfigError", "check_float", "check_int", "check_modules"]


class MethodConfigError(ValueError):
    """A method config field has a bad value.

    Attributes:
        param: The field, e.g. `"r"` inside a config class, `"method.lora.r"` once the registry
            resolved it (the control plane returns it as the error's `param`).
        message: What is wrong, for a user.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """Raise `MethodConfigError` unless `value` is an int (not a bool) in `[low, high]`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MethodConfigError(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise MethodConfigError(name, f"must be between {low} and {high}, got {value}")


def check_float(name: str, value: Any, low: float, high: float, *, include_high: bool = True) -> None:
    """Raise `MethodConfigError` unless `value` is a number in `[low, high]` (or `[low, high)`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MethodConfigError(name, f"must be a number, got {value!r}")
    if not low <= value <= high or (value == high and not include_high):
        bracket = "]" if include_high else ")"
        raise MethodConfigError(name, f"must be in [{low}, {high}{bracket}, got {value}")


def check_modules(name: str, value: Any) -> None:
    """Raise `MethodConfigError` unless `value` is `"all-linear"` or a non-empty list of names."""
    if value == "all-linear":
        return
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(module, str) and module for module in value)
    ):
        raise MethodConfigError(
            name, f'must be "all-linear" or a non-empty list of module names, got {value!r}'
        )
