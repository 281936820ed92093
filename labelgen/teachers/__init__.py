"""The teachers by name: the ones that ship inside labelgen, the built-in baselines, and model files.

A teacher says which part of the face region is visible face (the stage,
:mod:`labelgen.stages.teacher`). Two need no weights (``hull``, ``classical``);
the trained ones are ONNX files in this folder, listed with their sha256 and
headline numbers in ``registry.json`` and documented in ``docs/teacher.md``
(the model card). Files are found with :mod:`importlib.resources`, so they
work from a wheel as well as from a source checkout; nothing is downloaded.

:func:`resolve` turns what ``--teacher`` says (a name or a model path) into
what a job records, the file behind it and what a store says of it;
:func:`load_teacher` into a teacher ready to label.

Example:
    >>> DEFAULT_TEACHER in shipped_teachers()
    True
    >>> shipped_teacher_file(DEFAULT_TEACHER).suffix
    '.onnx'
    >>> resolve("hull").file() is None, resolve().record()["name"] == DEFAULT_TEACHER
    (True, True)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from labelgen.model_files import ModelFileMissing, file_sha256
from labelgen.stages.teacher import ClassicalTeacher, HullTeacher, ModelTeacher, Teacher

REINSTALL = ("reinstall the package: 'pip install --force-reinstall --no-deps structure-via-consensus', "
             "or in a source checkout 'git checkout -- labelgen/teachers && pip install -e .'")

MODEL_SUFFIXES = (".onnx", ".pt", ".ts", ".pth")  # what a model file given as --teacher is named
# Said in every --teacher / --model help (and README's models section): which model files run code.
MODEL_FILE_TRUST = ("A TorchScript .pt/.ts file is a program: loading it runs its code, which can read and "
                    "overwrite your files, so give only ones you made (svc-export) or trust. An .onnx file runs "
                    "no code of its own: onnxruntime runs its standard operators.")
BUILTIN_TEACHERS = {
    "hull": "the whole face region is visible face: labels without occlusions (a baseline)",
    "classical": "skin-colour model + GrabCut, no weights: a weak baseline (hands read as face, "
                 "eyes and beards as occlusion)",
}


@dataclass(frozen=True)
class ShippedTeacher:
    """One trained teacher of ``registry.json``.

    Attributes:
        name: short versioned name (``faceocc-w05-v1``), what ``--teacher`` takes.
        file: file name inside this package.
        sha256: hash of the file; a file that does not match is refused.
        description: one line on what the model is.
        input_size: side of the square network input.
        classes: names of the output channels, in order.
        face_class: output channel that means "visible face".
        headline: a few measured numbers, as text (the model card says how they were measured).
        quality_guard: what ``tests/labelgen/test_shipped_teacher.py`` holds the file to: the chain's
            pooled IoUs on the first ``faces`` synthetic val faces with held-out occluder
            ``families`` (``labelgen eval-labels --split val``), as measured for the card.
        licence: terms the weights carry.
    """

    name: str
    file: str
    sha256: str
    description: str
    input_size: int = 128
    classes: tuple[str, ...] = ("background", "face", "occlusion")
    face_class: int = 1
    headline: dict = field(default_factory=dict)
    quality_guard: dict = field(default_factory=dict)
    licence: str = ""


@lru_cache(maxsize=None)
def _registry() -> dict:
    return json.loads(resources.files(__package__).joinpath("registry.json").read_text())


def shipped_teachers() -> dict[str, ShippedTeacher]:
    """Every trained teacher in this package, by name."""
    return {name: ShippedTeacher(name=name, **{**values, "classes": tuple(values["classes"])})
            for name, values in _registry()["teachers"].items()}


DEFAULT_TEACHER: str = _registry()["default"]


def is_shipped(name: str) -> bool:
    return name in _registry()["teachers"]


def shipped_teacher_file(name: str, verify: bool = True) -> Path:
    """Path of a shipped teacher's model file.

    Args:
        name: a name of :func:`shipped_teachers`.
        verify: check the file's sha256 against the registry.

    Raises:
        KeyError: ``name`` is not a shipped teacher.
        ModelFileMissing: the file is missing or damaged (the message says how to reinstall).
    """
    teacher = shipped_teachers()[name]
    path = Path(str(resources.files(__package__).joinpath(teacher.file)))
    if not path.is_file():
        raise ModelFileMissing(f"the shipped teacher {name} ({path}) is missing; {REINSTALL}")
    if verify and file_sha256(str(path)) != teacher.sha256:
        raise ModelFileMissing(f"the shipped teacher {name} ({path}) does not match its sha256 "
                               f"{teacher.sha256[:12]}...: the file is damaged or was replaced; {REINSTALL}")
    return path


@dataclass(frozen=True)
class ResolvedTeacher:
    """A teacher name or model path, resolved (nothing is loaded).

    Attributes:
        spec: how a job records the teacher: a built-in or shipped name as it
            is, a model file as its absolute path (names keep a store
            resumable on any machine; a relative path would mean something
            else in another working directory, a Dask worker's say).
        shipped: the registry entry of a shipped teacher, else ``None``.
    """

    spec: str
    shipped: ShippedTeacher | None = None

    def file(self) -> Path | None:
        """The model file behind the teacher; ``None`` for the built-in ones.

        Raises:
            ModelFileMissing: a shipped teacher's file is missing or damaged.
        """
        if self.spec in BUILTIN_TEACHERS:
            return None
        return shipped_teacher_file(self.spec) if self.shipped is not None else Path(self.spec)

    def record(self) -> dict:
        """What a store's ``teacher`` attribute says: the name, and the file's sha256 when there is a file."""
        path = self.file()
        return {"name": self.spec if path is None or self.shipped is not None else path.name,
                "sha256": None if path is None else file_sha256(str(path))}


def resolve(spec: str | None = None) -> ResolvedTeacher:
    """What ``--teacher`` names: ``None`` (the default shipped teacher), a shipped teacher's name,
    ``hull``, ``classical``, or any other text as a model file's path."""
    spec = DEFAULT_TEACHER if spec is None else spec
    if spec in BUILTIN_TEACHERS:
        return ResolvedTeacher(spec)
    if is_shipped(spec):
        return ResolvedTeacher(spec, shipped_teachers()[spec])
    return ResolvedTeacher(str(Path(spec).resolve()))


def load_teacher(spec: str | None = None) -> Teacher:
    """A teacher by name or path, ready to label.

    Args:
        spec: ``None`` (the default shipped teacher), a shipped teacher's name
            (``labelgen teachers`` lists them), ``"classical"``, ``"hull"``, or a
            path to an ONNX / TorchScript model file.

    Raises:
        ValueError: an unknown name; :class:`~labelgen.stages.teacher.TeacherModelError`
            for a file that is not a usable model.
        FileNotFoundError: a missing model file (for a shipped teacher, the message says how to reinstall).
    """
    teacher = resolve(spec)
    if teacher.spec == "classical":
        return ClassicalTeacher()
    if teacher.spec == "hull":
        return HullTeacher()
    if teacher.shipped is not None:
        return ModelTeacher(teacher.file(), teacher.shipped.input_size, teacher.shipped.face_class, name=teacher.spec)
    if Path(spec).suffix in MODEL_SUFFIXES or Path(spec).exists():
        return ModelTeacher(spec)  # as given: its messages name the path the user wrote
    names = ", ".join(["classical", "hull", *shipped_teachers()])
    raise ValueError(f"unknown teacher {spec!r}: use one of {names}, or a path to a .onnx/.pt model")
