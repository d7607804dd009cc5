"""``spotfit classify train|report|export``: spot quality classifier on the command line."""
from __future__ import annotations



def _camera(args, locs):
    import spotfit
    if args.calibration:
        return spotfit.Camera.from_calibration(args.calibration)
    saved = locs.attrs.get("spotfit", {}).get("camera", {}) if isinstance(locs.attrs.get("spotfit"), dict) else {}
    pick = {k: (getattr(args, k) if getattr(args, k) is not None else saved.get(k))
            for k in ("baseline", "sensitivity", "em_gain", "qe")}
    return spotfit.Camera(**{k: float(v) for k, v in pick.items() if v is not None})


def _rules(pairs):
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
    """(patches, params, labels, rule report or None) from LOCS + MOVIE."""
    from spotfit import io
    from spotfit.classify import label_spots
    from spotfit.patches import extract_patches
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

    from spotfit.classify import SpotClassifier, format_report
    from spotfit.patches import save_dataset
    patches, locs, labels, rules, camera = _labelled(args)
    if rules is not None:
        print(f"rule labels: {rules.attrs['n_good']} good of {rules.attrs['n']}")
        print(rules.to_string())
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(labels))
    n_test = int(round(args.test_fraction * len(idx)))
    test, train = idx[:n_test], idx[n_test:]
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
    from spotfit.classify import SpotClassifier, format_report
    from spotfit.patches import load_dataset
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
    from spotfit.patches import save_dataset
    patches, locs, labels, rules, camera = _labelled(args)
    save_dataset(args.output, patches, locs, labels, meta={"camera": camera.as_dict()})
    print(f"{len(patches)} spots ({int(labels.sum())} good) written to {args.output}")
    return 0


def _common(p, size=True):
    p.add_argument("--psf-sigma", type=float, default=None, help="expected PSF sigma, px (default: from LOCS)")
    p.add_argument("--rule", action="append", metavar="NAME=VALUE",
                   help="override a labelling rule, e.g. max_ellipticity=1.2 or chi2_pvalue=off (repeatable)")
    p.add_argument("--label-column", default=None, help="use this boolean column of LOCS as labels, not the rules")
    cam = p.add_argument_group("camera (default: as recorded in LOCS, else baseline 100, 1 e-/ADU)")
    cam.add_argument("--baseline", type=float)
    cam.add_argument("--sensitivity", type=float, help="photoelectrons per ADU")
    cam.add_argument("--em-gain", dest="em_gain", type=float)
    cam.add_argument("--qe", type=float)
    cam.add_argument("--calibration", help="sCMOS calib.npy (offset, variance, gain maps)")
    if size:
        p.add_argument("--size", type=int, default=9, help="patch side, px (odd; default 9)")


def register(subparsers) -> None:
    """Add ``classify`` (train, report, export) to ``spotfit``'s argparse subparsers."""
    cls = subparsers.add_parser("classify", help="spot quality classifier: train, report, export")
    sub = cls.add_subparsers(dest="classify_command", required=True)

    tr = sub.add_parser("train", help="label spots with the fit rules and train a classifier on their images")
    tr.add_argument("locs", help="localizations (parquet/csv/hdf5 from `spotfit.io.save`)")
    tr.add_argument("movie", help="the movie they were localized from")
    tr.add_argument("-o", "--output", required=True, help="classifier file to write")
    tr.add_argument("--model", default="hgb", choices=["hgb", "logistic", "svm-poly", "auto"],
                    help="default hgb; 'auto' picks by 5-fold cross-validated ROC AUC")
    tr.add_argument("--features", default="shape", choices=["shape", "moments", "raw"],
                    help="what the model sees of each patch (default: 14 shape numbers; see docs/classification.md)")
    tr.add_argument("--test-fraction", type=float, default=0.25, help="share of spots held out for the report (default 0.25)")
    tr.add_argument("--png", default=None, help="write a grid of example spots here")
    tr.add_argument("--export-dataset", default=None, help="also write patches + fit + labels (.npz/.h5)")
    tr.add_argument("--seed", type=int, default=0)
    _common(tr)
    tr.set_defaults(func=_train)

    rp = sub.add_parser("report", help="score a classifier on labelled spots")
    rp.add_argument("model", help="classifier file")
    rp.add_argument("locs", nargs="?", help="localizations (labelled by the rules or --label-column)")
    rp.add_argument("movie", nargs="?", help="the movie they were localized from")
    rp.add_argument("--dataset", help="a labelled data set (.npz/.h5) instead of LOCS MOVIE")
    rp.add_argument("--png", default=None, help="write a grid of example spots here")
    _common(rp, size=False)
    rp.set_defaults(func=_report)

    ex = sub.add_parser("export", help="write patches + fit parameters + rule labels to one .npz/.h5 file")
    ex.add_argument("locs")
    ex.add_argument("movie")
    ex.add_argument("-o", "--output", required=True)
    _common(ex)
    ex.set_defaults(func=_export)
