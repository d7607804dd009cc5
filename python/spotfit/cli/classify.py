"""``spotfit classify train|report|export``: spot quality classifier on the command line."""
from __future__ import annotations

from .common import add_camera_options, add_deprecated_alias, camera_from_args, help_text


def _camera(args, locs):
    """The camera the spots were fitted with (recorded in LOCS), overridden by the camera options."""
    from spotfit import io
    recorded = locs.attrs.get("spotfit") if isinstance(locs.attrs.get("spotfit"), dict) else {}
    saved = recorded.get("camera") if isinstance(recorded.get("camera"), dict) else {}
    metadata = {"camera": saved, "pixel_size_nm": recorded.get("pixel_size_nm")}
    info = io.movie_info(args.movie)
    return camera_from_args(args, metadata, (info.rows, info.cols))


def _rules(pairs):
    """``--rule NAME=VALUE`` items -> ``{name: value}`` (a number, a (low, high) pair, or None for none/off)."""
    import ast
    out = {}
    for item in pairs or []:
        key, _, value = item.partition("=")
        if not _:
            raise ValueError(f"--rule takes NAME=VALUE, got {item!r}")
        if value.strip().lower() in ("none", "off"):
            out[key.strip()] = None
            continue
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"--rule {key.strip()}: {value.strip()!r} is not a number (or a (low, high) pair, "
                             "or none/off)") from None
    return out


def _labelled(args):
    """(patches, locs, labels, rule report or None, camera) from LOCS + MOVIE."""
    from spotfit import io
    from spotfit.ml import extract_patches, label_spots
    locs = io.load(args.locs)
    camera = _camera(args, locs)
    if getattr(args, "label_column", None):
        if args.label_column not in locs:
            raise ValueError(f"{args.locs} has no column {args.label_column!r}")
        labels, report = locs[args.label_column].astype(bool).to_numpy(), None
    else:
        good, report = label_spots(locs, _rules(args.rule), psf_sigma=args.psf_sigma)
        labels = good.to_numpy()
    patches = extract_patches(args.movie, locs, args.size, camera=camera)
    return patches, locs, labels, report, camera


def _train(args) -> int:
    import numpy as np

    from spotfit.ml import SpotClassifier, format_report, save_dataset
    from spotfit.ml.classifier import check_labels
    if not 0 <= args.test_fraction < 1:
        raise ValueError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    patches, locs, labels, rules, camera = _labelled(args)
    if rules is not None:
        print(f"rule labels: {rules.attrs['n_good']} good of {rules.attrs['n']}")
        print(rules.to_string())
    check_labels(labels)   # before the split: name the whole set's counts
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(labels))
    n_test = int(round(args.test_fraction * len(idx)))
    test, train = idx[:n_test], idx[n_test:]
    if n_test and labels[test].all() or n_test and not labels[test].any():
        raise ValueError(f"the {n_test} held-out spots (--test-fraction {args.test_fraction}) are all of one class "
                         f"({int(labels.sum())} good of {len(labels)} in all): too few to score the classifier")
    if args.model == "auto":
        clf = SpotClassifier.select_model(patches[train], labels[train], features=args.features,
                                          random_state=args.seed)
        print("cross-validated ROC AUC:\n" + clf.cv_results_.to_string())
    else:
        clf = SpotClassifier(args.model, features=args.features, random_state=args.seed).fit(patches[train],
                                                                                             labels[train])
    if n_test:
        print(f"\nheld-out {n_test} spots:")
        print(format_report(clf.report(patches[test], labels[test], png=args.png)))
    clf.save(args.output)
    print(f"classifier written to {args.output}")
    if args.export_dataset:
        save_dataset(args.export_dataset, patches, locs, labels, meta={"camera": camera.as_dict()})
        print(f"data set written to {args.export_dataset}")
    return 0


def _report(args) -> int:
    from spotfit.ml import SpotClassifier, format_report, load_dataset
    clf = SpotClassifier.load(args.model)
    if args.dataset:
        data = load_dataset(args.dataset)
        if data.labels is None:
            raise ValueError(f"{args.dataset} has no labels")
        patches, labels = data.patches, data.labels
    elif args.locs and args.movie:
        args.size = clf.size
        patches, _, labels, _, _ = _labelled(args)
    else:
        raise ValueError("give LOCS and MOVIE, or --dataset FILE")
    print(repr(clf))
    print(format_report(clf.report(patches, labels, png=args.png)))
    return 0


def _export(args) -> int:
    from spotfit.ml import save_dataset
    patches, locs, labels, rules, camera = _labelled(args)
    save_dataset(args.output, patches, locs, labels, meta={"camera": camera.as_dict()})
    print(f"{len(patches)} spots ({int(labels.sum())} good) written to {args.output}")
    return 0


def _common(p, size=True):
    """Labelling, camera and patch options of every classify command."""
    p.add_argument("--psf-sigma", type=float, default=None, metavar="PX",
                   help=help_text("expected PSF sigma, px (default: as recorded in LOCS)"))
    p.add_argument("--rule", action="append", metavar="NAME=VALUE",
                   help=help_text("override a labelling rule, e.g. max_ellipticity=1.2 or chi2_pvalue=off; "
                                  "repeatable (default: spotfit.ml.DEFAULT_RULES)"))
    p.add_argument("--label-column", default=None, metavar="COLUMN",
                   help=help_text("use this boolean column of LOCS as labels (default: none, the rules label)"))
    add_camera_options(p, source="the camera recorded in LOCS")
    add_deprecated_alias(p, "--baseline", "--camera-baseline", dest="camera_baseline")
    if size:
        p.add_argument("--size", type=int, default=9, metavar="PX", help=help_text("patch side, odd, px", 9))


def _png_option(p) -> None:
    p.add_argument("--png", default=None, metavar="FILE.png",
                   help=help_text("write a grid of example spots here (default: none)"))


def register(subparsers) -> None:
    """Add ``classify`` (train, report, export) to ``spotfit``'s argparse subparsers."""
    from spotfit.ml import SpotClassifier
    from spotfit.ml.features import PatchFeatures
    cls = subparsers.add_parser("classify", help="spot quality classifier: train, report, export")
    sub = cls.add_subparsers(dest="classify_command", required=True, metavar="train|report|export")

    tr = sub.add_parser("train", help="label spots with the fit rules and train a classifier on their images")
    tr.add_argument("locs", help="localizations (parquet/csv/hdf5 from `spotfit localize`)")
    tr.add_argument("movie", help="the movie they were localized from")
    tr.add_argument("-o", "--output", required=True, metavar="MODEL", help="classifier file to write")
    tr.add_argument("--model", default="hgb", choices=[*SpotClassifier.MODELS, "auto"],
                    help=help_text("classifier; 'auto' picks by 5-fold cross-validated ROC AUC", "hgb"))
    tr.add_argument("--features", default="shape", choices=PatchFeatures.KINDS,
                    help=help_text("what the model sees of each patch; shape: 14 numbers (see "
                                   "docs/classification.md)", "shape"))
    tr.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                    help=help_text("share of spots held out for the report, in [0, 1)", 0.25))
    _png_option(tr)
    tr.add_argument("--export-dataset", default=None, metavar="FILE",
                    help=help_text("also write patches + fit + labels to this .npz/.h5 (default: none)"))
    tr.add_argument("--seed", type=int, default=0, metavar="N", help=help_text("random seed", 0))
    _common(tr)
    tr.set_defaults(func=_train)

    rp = sub.add_parser("report", help="score a classifier on labelled spots")
    rp.add_argument("model", help="classifier file")
    rp.add_argument("locs", nargs="?", help="localizations (labelled by the rules or --label-column)")
    rp.add_argument("movie", nargs="?", help="the movie they were localized from")
    rp.add_argument("--dataset", default=None, metavar="FILE",
                    help=help_text("a labelled data set (.npz/.h5) instead of LOCS MOVIE (default: none)"))
    _png_option(rp)
    _common(rp, size=False)
    rp.set_defaults(func=_report)

    ex = sub.add_parser("export", help="write patches + fit parameters + rule labels to one .npz/.h5 file")
    ex.add_argument("locs", help="localizations (parquet/csv/hdf5 from `spotfit localize`)")
    ex.add_argument("movie", help="the movie they were localized from")
    ex.add_argument("-o", "--output", required=True, metavar="FILE", help="data set to write (.npz/.h5)")
    _common(ex)
    ex.set_defaults(func=_export)
