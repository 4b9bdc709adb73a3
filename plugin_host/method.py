"""What a plugin registers: a :class:`Method` (a style filter) and a :class:`Command` (a CLI subcommand).

Registration stays cheap: ``run`` and ``train`` may be given as ``"module:function"`` strings,
imported only when the method is used, so ``plugin_host list`` never imports torch.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .host_options import clashes
from .schema import ImageInput, Schema

if TYPE_CHECKING:  # pragma: no cover
    import argparse

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: The submenus of GIMP 3's Filters menu a method may choose as its ``menu``.
GIMP_MENUS = ("Artistic", "Blur", "Decor", "Distorts", "Edge-Detect", "Enhance", "Generic", "Light and Shadow",
              "Map", "Noise", "Render")
#: The submenu of ``menu`` a method lands in unless it chooses another (``""``: directly in ``menu``).
DEFAULT_SUBMENU = "Neural Style"


@dataclass(frozen=True)
class Method:
    """A style method.

    :param name: short id used on the command line (``gatys``); lower case, digits, ``-`` and ``_``.
    :param title: human name shown in menus ("Neural Style (Gatys)").
    :param description: one paragraph on what it does and when to use it.
    :param inputs: the images it reads; at most one has role ``content``. A method with none (a
        generator, which makes a picture from its parameters alone) runs without an image: no
        positional argument on the command line, no active layer needed in GIMP.
    :param schema: its parameters.
    :param run: ``run(inputs, params, ctx) -> Tensor`` or ``"module:function"`` naming it.
        ``inputs`` maps each input name to a ``(1, 3, H, W)`` float tensor in 0..1 RGB on
        ``ctx.device`` (a list of them for ``multiple`` inputs); it returns ``(1, 3, H', W')`` in 0..1.
    :param weights: names of weights entries it may need (for ``weights fetch``/docs).
    :param train: ``train(params, ctx) -> Path`` or ``"module:function"``, for ``plugin_host
        train METHOD``; ``None`` if it cannot train. ``train_schema`` declares its options.
    :param menu: where GIMP lists it: one of :data:`GIMP_MENUS`, the submenus of Filters
        (``Artistic``: Filters › Artistic; ``Render`` for a generator).
    :param submenu: a submenu of ``menu`` grouping it with related filters (default ``Neural Style``:
        Filters › Artistic › Neural Style); ``""`` puts it directly in ``menu``. Up to 40 characters, no ``/``.
    :param creates_image: ``True`` for a generator, whose result is a new picture rather than a change
        of the layer: GIMP's dialog then puts the result in a new image unless the user chooses otherwise.
    """

    name: str
    title: str
    description: str
    inputs: tuple[ImageInput, ...]
    schema: Schema
    run: Callable[..., Any] | str
    weights: tuple[str, ...] = ()
    train: Callable[..., Any] | str | None = None
    train_schema: Schema = field(default_factory=Schema)
    menu: str = "Artistic"
    submenu: str = DEFAULT_SUBMENU
    creates_image: bool = False

    @property
    def can_train(self) -> bool:
        return self.train is not None

    def problems(self) -> list[str]:
        """Reasons this declaration is invalid (empty when it is fine)."""
        found = []
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            found.append(f"name {self.name!r} must match {NAME_PATTERN.pattern}")
        for label, schema in (("schema", self.schema), ("train_schema", self.train_schema)):
            if not isinstance(schema, Schema):
                found.append(f"{label} must be a plugin_host.schema.Schema")
        contents = [i for i in self.inputs if isinstance(i, ImageInput) and i.role == "content"]
        if len(contents) > 1 or not all(isinstance(i, ImageInput) for i in self.inputs):
            found.append("inputs must be ImageInput objects with at most one of role 'content'")
        for label, target in (("run", self.run), ("train", self.train)):
            if target is None and label == "train":
                continue
            if not (callable(target) or isinstance(target, str) and re.match(r"^[\w.]+:[\w.]+$", target)):
                found.append(f"{label} must be callable or a 'module:function' string, got {target!r}")
        if self.menu not in GIMP_MENUS:
            found.append(f"menu {self.menu!r} must be one of {', '.join(GIMP_MENUS)}")
        if not isinstance(self.submenu, str) or "/" in self.submenu or len(self.submenu) > 40 \
                or self.submenu != self.submenu.strip():
            found.append(f"submenu {self.submenu!r} must be text of up to 40 characters without '/' "
                         "or surrounding spaces ('' for none)")
        if not isinstance(self.creates_image, bool):
            found.append(f"creates_image must be True or False, got {self.creates_image!r}")
        if isinstance(self.schema, Schema) and isinstance(self.inputs, (tuple, list)):
            input_names = {i.name for i in self.inputs} | {f"{i.name}_blend" for i in self.inputs if i.weighted}
            clash = {p.name for p in self.schema} & input_names
            if clash:
                found.append(f"names used for both an input and a parameter: {sorted(clash)}")
            found += clashes(self)  # the host's option names, and flags given twice
        return found

    def resolve_run(self) -> Callable[..., Any]:
        return _resolve(self.run)

    def resolve_train(self) -> Callable[..., Any]:
        if self.train is None:
            raise ValueError(f"method {self.name!r} cannot train")
        return _resolve(self.train)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "menu": self.menu, "submenu": self.submenu, "creates_image": self.creates_image,
                "can_train": self.can_train, "weights": list(self.weights),
                "inputs": [i.to_json() for i in self.inputs], "params": self.schema.to_json()}

    @property
    def menu_location(self) -> str:
        """Where GIMP lists it, as a reader would say it: ``Filters > Artistic > Neural Style``."""
        return " > ".join(p for p in ("Filters", self.menu, self.submenu) if p)

    @property
    def content_input(self) -> ImageInput | None:
        """The input of role ``content``; ``None`` for a method that reads no image (a generator)."""
        return next((i for i in self.inputs if i.role == "content"), None)


@dataclass(frozen=True)
class Command:
    """A CLI subcommand a plugin adds (``plugin_host NAME …``).

    :param add_arguments: receives the subcommand's ``argparse.ArgumentParser``.
    :param handler: receives the parsed namespace; returns an exit code.
    """

    name: str
    help: str
    add_arguments: Callable[["argparse.ArgumentParser"], None]
    handler: Callable[["argparse.Namespace"], int]


def _resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
