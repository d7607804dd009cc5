"""What every ``spotfit`` command shares: the parser, usage errors, output checks, the one camera option group
and the localize options (generated from :func:`spotfit.options.fields`).

One name for one thing in every command: ``--pixel-size`` is always the camera pixel size in nm, the camera
options are the same group wherever a camera is needed, and a localize setting ``name`` is ``--name`` (with
dashes), with the help, unit and default of :class:`spotfit.LocalizeOptions`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path


class UsageError(ValueError):
    """A problem with the command line found after parsing (exit code 2)."""


#: Exceptions that mean "the input or an option is wrong" (exit code 2) rather than "spotfit failed" (1).
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                PermissionError)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), also for subcommands."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def help_text(text: str, default=None, unit: str = "") -> str:
    """``text, unit (default X)``: the form of every option's help; nothing is added that it already says.

    Parameters
    ----------
    text : str
        What the option sets.
    default : object, optional
        Its default; None adds nothing (say the default in ``text`` then).
    unit : str
        Unit of the value, appended after a comma.
    """
    out = text + (f", {unit}" if unit and not text.endswith(unit) else "")
    if default is not None and "default" not in out:
        values = default if isinstance(default, (tuple, list)) else [default]
        out += f" (default {'/'.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)})"
    return out.replace("%", "%%")   # argparse %-formats help strings


class _DeprecatedAlias(argparse.Action):
    """Stores like the option it stands for and says on stderr which name to use now."""

    def __init__(self, option_strings, dest, new_name: str = "", **kwargs):
        self.new_name = new_name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"spotfit: note: {option_string} is deprecated; use {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser, old: str, new: str, dest: str, type=float) -> None:
    """Accept the old option name ``old`` as ``new`` (hidden from --help), so that old scripts still run."""
    parser.add_argument(old, dest=dest, type=type, default=argparse.SUPPRESS, action=_DeprecatedAlias,
                        new_name=new, help=argparse.SUPPRESS)


# --------------------------------------------------------------------------------------------------------
# output files
# --------------------------------------------------------------------------------------------------------

def check_output_path(path: Path) -> None:
    """UsageError unless ``path`` can be written as a file: not a folder, in a folder that exists."""
    if path.is_dir():
        raise UsageError(f"output {str(path)!r} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"output folder {str(path.parent)!r} does not exist")


def output_format(path: Path, fmt) -> str:
    """The table format to write ``path`` in: ``fmt`` (--format), else from the suffix."""
    from spotfit import io
    try:
        return io.infer_format(path, fmt, reading=False)
    except ValueError:
        raise UsageError(f"cannot tell the output format from {str(path)!r}: give --format "
                         f"({'|'.join(io.FORMATS)}) or a .parquet/.csv/.hdf5 name") from None


# The optional packages each table format writes with (spotfit.io imports them only when writing).
_WRITER_PACKAGES = {"parquet": ("pyarrow",), "picasso": ("h5py", "yaml")}


def check_writer(fmt: str) -> None:
    """Fail before any work when the output format's optional package is missing."""
    from spotfit._shared.optional import need
    for module in _WRITER_PACKAGES.get(fmt, ()):
        try:
            need(module, f"--format {fmt}")
        except ImportError as exc:
            raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------------------------------------
# the camera option group
# --------------------------------------------------------------------------------------------------------

#: (flag, metavar, Camera setting, what it is) of the camera options; the dest is the flag's name.
CAMERA_OPTIONS = (
    ("--camera-baseline", "ADU", "baseline", "offset the camera adds to every pixel, ADU"),
    ("--sensitivity", "E_PER_ADU", "sensitivity", "photoelectrons per ADU (camera count)"),
    ("--em-gain", "G", "em_gain", "EMCCD multiplication gain, 1 for sCMOS/CCD"),
    ("--qe", "QE", "qe", "quantum efficiency in (0, 1]; 1 reports photoelectrons"),
    ("--pixel-size", "NM", "pixel_size_nm", "camera pixel size in the sample, nm"),
)


def add_table_input(parser, *, old_pixel_size_name: bool = False) -> None:
    """LOCS, --input-format and the camera pixel size (--pixel-size) of every command that reads a table."""
    from spotfit import io
    parser.add_argument("locs", metavar="LOCS",
                        help="localization file (parquet, csv, ThunderSTORM csv, Picasso hdf5)")
    parser.add_argument("--input-format", choices=io.FORMATS, default=None,
                        help=help_text("format of LOCS (default: from its suffix and first line)"))
    parser.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                        help=help_text("camera pixel size in the sample, nm: reads ThunderSTORM nm coordinates, "
                                       "overrides the one LOCS records (default: as LOCS records it)"))
    if old_pixel_size_name:
        add_deprecated_alias(parser, "--camera-pixel-size", "--pixel-size", dest="pixel_size")


def load_table(path, fmt=None, pixel_size=None):
    """A localization table for a command; ``pixel_size`` (nm), when given, overrides the table's."""
    from spotfit import io
    try:
        locs = io.load(path, format=fmt, pixel_size_nm=pixel_size)
    except ValueError as exc:
        if "pixel_size_nm" in str(exc) and pixel_size is None:
            raise UsageError(f"{str(path)!r} stores nm: give the camera pixel size with --pixel-size NM") from exc
        raise
    if pixel_size is not None:
        locs.attrs = {"spotfit": dict(locs.attrs.get("spotfit", {}), pixel_size_nm=pixel_size)}
    return locs


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def roi_origin(text: str) -> tuple:
    """argparse type of ``--roi-origin ROW,COL``."""
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (two integers), got {text!r}") from None
    return r, c


def add_camera_options(parser, *, source: str = "the movie's metadata", defaults=None,
                       calibration: bool = True):
    """Add the camera option group (--camera-baseline, --sensitivity, --em-gain, --qe, --pixel-size and,
    with ``calibration``, --calibration, --roi-origin) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    source : str
        Where a setting not given comes from (help text); it falls back to :class:`spotfit.Camera`'s default.
    defaults : dict, optional
        ``{Camera setting: value}`` that replaces ``source`` for a command with no file to read (simulate).
    calibration : bool
        Also offer sCMOS calibration maps.

    Returns
    -------
    argparse._ArgumentGroup
    """
    from spotfit import Camera
    fallback = {f.name: f.default for f in dataclasses.fields(Camera)}
    defaults = defaults or {}
    group = parser.add_argument_group("camera", "photons = (ADU - baseline) x sensitivity / (em_gain x qe)")
    for option, metavar, setting, text in CAMERA_OPTIONS:
        if setting in defaults:
            default, shown = defaults[setting], f"(default {defaults[setting]:g})"
        else:
            default = None
            shown = f"(default: {source}, else {'not set' if fallback[setting] is None else f'{fallback[setting]:g}'})"
        group.add_argument(option, type=float, metavar=metavar, default=default,
                           help=help_text(f"{text} {shown}"))
    if calibration:
        group.add_argument("--calibration", metavar="CALIB.npy", default=None,
                           help=help_text("sCMOS per-pixel maps (3, rows, cols) = offset ADU, variance ADU^2, gain "
                                          "ADU/e-; replace --camera-baseline and --sensitivity (default: none)"))
        group.add_argument("--roi-origin", type=roi_origin, metavar="ROW,COL", default=None,
                           help=help_text("sensor pixel of the movie's top-left corner, to cut the --calibration "
                                          "maps to the movie (default: none, the maps must match the frames)"))
    return group


# make_camera's words for its inputs -> the flags that set them, so that a message says what to type.
_CAMERA_WORDS = (("the ROI origin (ROW,COL of ", "--roi-origin ROW,COL ("), ("ROI origin", "--roi-origin"),
                 ("roi_origin", "--roi-origin"), ("a calibration", "--calibration"),
                 ("baseline or sensitivity", "--camera-baseline or --sensitivity"))


def _camera_message(message: str) -> str:
    for words, option in _CAMERA_WORDS:
        message = message.replace(words, option)
    first = message.split(" ", 1)[0]
    for option, _, setting, _ in CAMERA_OPTIONS:
        if first == setting:
            return f"{message} (set with {option})"
    return message


def camera_from_args(args, metadata=None, frame_shape=None):
    """The camera of the camera options over a movie's ``metadata`` (:func:`spotfit.camera.make_camera`).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of a parser with :func:`add_camera_options`.
    metadata : dict, optional
        The movie's metadata (its camera entries are the defaults).
    frame_shape : (rows, cols), optional
        Frame shape the calibration maps are checked against (and cut to, with --roi-origin).

    Returns
    -------
    spotfit.Camera

    Raises
    ------
    UsageError
        For impossible or conflicting settings; the message names the options.
    """
    from spotfit.camera import make_camera
    settings = {setting: getattr(args, _dest(option), None) for option, _, setting, _ in CAMERA_OPTIONS}
    calibration = getattr(args, "calibration", None)
    if calibration is not None and not Path(calibration).is_file():
        raise UsageError(f"--calibration {calibration!r}: no such file")
    try:
        return make_camera(metadata, calibration=calibration, roi_origin=getattr(args, "roi_origin", None),
                           frame_shape=None if frame_shape is None else tuple(frame_shape), **settings)
    except ValueError as exc:
        raise UsageError(_camera_message(str(exc))) from exc


# --------------------------------------------------------------------------------------------------------
# the localize options, one per spotfit.LocalizeOptions field
# --------------------------------------------------------------------------------------------------------

def flag(name: str) -> str:
    """The command-line flag of a setting: ``psf_sigma`` -> ``--psf-sigma``."""
    return "--" + name.replace("_", "-")


def _value_type(name: str, default):
    """The type of a setting: its default's, or for a None default the annotation's (``Optional[int]``)."""
    if default is not None:
        return type(default)
    from spotfit.options import LocalizeOptions
    hint = typing.get_type_hints(LocalizeOptions)[name]
    return next(t for t in typing.get_args(hint) if t is not type(None))


def regressor_names() -> list:
    """The packaged centroid regressors, which ``--estimator`` takes besides the fit estimators."""
    from spotfit.ml.regress import DEFAULT_MODELS
    return list(DEFAULT_MODELS)


def estimator_names() -> list:
    """Every name ``--estimator`` takes (it also takes a path to a saved regressor)."""
    from spotfit.registry import ESTIMATORS
    return list(ESTIMATORS) + regressor_names()


def estimator_choice(text: str) -> str:
    """argparse type of ``--estimator``: a fit estimator, a packaged regressor, or a saved regressor .npz."""
    if text in estimator_names():
        return text
    if text.endswith(".npz"):
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"no regressor file {text!r}")
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(estimator_names())}, or "
                                     "a saved regressor MODEL.npz)")


def _choices(name: str):
    from spotfit import registry
    return {"threshold_mode": registry.THRESHOLD_MODES, "model": registry.MODELS}.get(name)


def add_localize_options(parser, title: str = "detection and fit (spotfit.LocalizeOptions)"):
    """Add one option per :func:`spotfit.options.fields` entry; returns the argument group.

    ``--name`` takes the type of the default, registry names as choices, and the field's help, unit and
    default as help. ``--estimator`` also takes packaged regressor names and a saved regressor ``.npz``;
    booleans are ``--name`` (default off) or ``--name/--no-name`` (default on).
    """
    from spotfit.options import fields
    group = parser.add_argument_group(title)
    for name, default, text, unit in fields():
        kind = _value_type(name, default)
        if kind is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            act = group.add_argument(flag(name), action=action, default=default)
            act.help = help_text(text, "on" if default else "off")   # not argparse's own "(default: True)"
            continue
        kw = {"type": kind, "metavar": unit.upper() if unit else ("N" if kind is int else "X")}
        if name == "calibration":   # --calibration is the camera's sCMOS map (add_camera_options)
            group.add_argument("--z-calibration", dest="z_calibration", metavar="CAL.json", default=None,
                               help=help_text(text + "; the JSON of `spotfit calibrate-3d` (default: none, 2D)"))
            continue
        if name == "estimator":
            kw = {"type": estimator_choice, "metavar": "|".join(estimator_names()) + "|MODEL.npz"}
            text += (f"; or a centroid regressor, no fit: {' or '.join(regressor_names())} (packaged) or a saved "
                     "MODEL.npz (see docs/regression.md)")
        elif _choices(name) is not None:
            kw = {"choices": list(_choices(name))}
        group.add_argument(flag(name), default=default, help=help_text(text, default, unit), **kw)
    return group


def _option_message(message: str) -> str:
    """``threshold must be ...`` -> ``--threshold must be ...``: name the flag the user typed."""
    from spotfit.options import names
    first = message.split(" ", 1)[0]
    return flag(first) + message[len(first):] if first in names() else message


def options_from_args(args):
    """:class:`spotfit.LocalizeOptions` from options added by :func:`add_localize_options`.

    A regressor ``--estimator`` (not a fit estimator) is left at the default here: it goes to
    :func:`spotfit.localize` as ``estimator=``.

    Raises
    ------
    UsageError
        For an invalid value; the message names the flag.
    """
    from spotfit.options import LocalizeOptions, names
    from spotfit.registry import ESTIMATORS
    values = {name: getattr(args, name) for name in names() if hasattr(args, name) and name != "calibration"}
    if getattr(args, "z_calibration", None) is not None:   # args.calibration is the camera's sCMOS map
        values["calibration"] = args.z_calibration
    if values.get("estimator") not in ESTIMATORS:
        values.pop("estimator", None)
    try:
        return LocalizeOptions(**values)
    except (ValueError, TypeError) as exc:
        raise UsageError(_option_message(str(exc))) from exc
