"""``NAME:key=value,key=value``: the one grammar for architecture and task specs.

    parse_spec("lstm:forget_bias=one,num_layers=2", ARCH_OPTIONS, "arch")
    -> Spec(name="lstm", options=(("forget_bias", "one"), ("num_layers", 2)))

Values are converted by the declared type of the option they set (int, float, bool, str);
whether a converted value is allowed (a range, a choice, finiteness) is the business of the
config that receives it. Every error is a :class:`~bpttlab._util.ConfigError` for the field that
carried the spec (``arch``, ``task``), naming the spec, the option and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bpttlab._util import ConfigError

__all__ = ["Spec", "parse_spec"]

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: ``name`` and its options as sorted (key, value) pairs."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    def __str__(self) -> str:
        opts = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                        for k, v in self.options)  # fmt: skip
        return f"{self.name}:{opts}" if opts else self.name


def _convert(kind: type, raw: str) -> Any:
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError
    return kind(raw)


def parse_spec(text: Any, choices: Mapping[str, Mapping[str, type]], field: str) -> Spec:
    """Parse ``text`` against ``choices`` (name -> {option: type}).

    Arguments:
        text: the spec, e.g. ``"copy-bit:noise=0.5"``; surrounding spaces are ignored.
        choices: the names allowed and, for each, its options and their types.
        field: what the spec is for ("arch", "task"): the field every error names.

    Raises:
        ConfigError: unknown name, unknown option, no ``=``, an option given twice, or a value
        that does not convert to the option's type.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(field, text, f"give a name, one of {', '.join(choices)}")
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in choices:
        raise ConfigError(field, text, f"{name!r} is not one of {', '.join(choices)}")
    types = choices[name]
    allowed = ", ".join(types) or "none"
    options: dict[str, Any] = {}
    for item in (s.strip() for s in rest.split(",")):
        if not item:
            continue
        key, eq, raw = (s.strip() for s in item.partition("="))
        if not eq or key not in types:
            raise ConfigError(
                field, text, f"option {item!r} is not KEY=VALUE with KEY one of {name}'s "
                f"options: {allowed}"
            )  # fmt: skip
        if key in options:
            raise ConfigError(field, text, f"option {key!r} is given twice")
        kind = types[key]
        try:
            options[key] = _convert(kind, raw)
        except ValueError:
            raise ConfigError(
                field, text, f"option {key}={raw!r} is not a valid {kind.__name__}"
            ) from None
    return Spec(name, tuple(sorted(options.items())))
