"""A registry is a dict and a decorator; an unknown name lists the valid ones."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry:
    """Maps a name to a builder. `@REG.register("name")` adds one."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable:
        def deco(fn: Callable) -> Callable:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = fn
            return fn

        return deco

    def __getitem__(self, name: str) -> Callable[..., Any]:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the builder, refusing keyword options it does not take."""
        fn = self[name]
        check_kwargs(fn, kwargs, f"{self.kind} {name!r}")
        return fn(*args, **kwargs)


@functools.cache
def _accepted(fn: Callable) -> tuple[str, ...] | None:
    """The keyword options `fn` takes (None: any, it has **kwargs); its signature is read once."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def check_kwargs(fn: Callable, kwargs: dict, what: str) -> None:
    """Raise a ValueError naming the accepted options when `kwargs` has an unknown key."""
    accepted = _accepted(fn)
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{what} has no option {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(accepted) or '(none)'}"
        )
