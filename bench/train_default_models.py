"""Regenerate the default learned estimators shipped in python/spotfit/models/.

    python bench/train_default_models.py [--n 300000] [--out python/spotfit/models]

Both models are trained on simulated 9x9 patches (spotfit.ml.training_set) with exact ground
truth: PSF sigma uniform in 1.1-1.5 px, photons log-uniform in 150-6000, background uniform in 5-80
photons/px, centres uniform within +-0.5 px of the middle pixel, Poisson noise. They use a matched
filter of sigma 1.3 px for normalization and 5 signal-to-noise bins. Retrain (same script, other
ranges) for a microscope whose PSF sigma in pixels falls outside 1.1-1.5.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from spotfit.ml import CentroidRegressor, training_set

RANGES = dict(size=9, psf_sigma=(1.1, 1.5), photons=(150.0, 6000.0), background=(5.0, 80.0), log_photons=True)


def held_out_rmse(model):
    out = {}
    for name, kw in {"500-5000ph_bg20_s1.3": dict(photons=(500, 5000), background=20),
                     "200-1000ph_bg50_s1.3": dict(photons=(200, 1000), background=50)}.items():
        p, t = training_set(50000, psf_sigma=1.3, seed=12345, **kw)
        e = model.predict(p) - t[["x", "y"]].to_numpy()
        out[name] = float(np.sqrt(np.mean(e ** 2)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300000, help="training patches")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "python" / "spotfit" / "models"))
    ap.add_argument("--kinds", nargs="+", default=["ridge", "tf-linear"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    patches, truth = training_set(args.n, seed=2024, **RANGES)
    for kind in args.kinds:
        t0 = time.time()
        kw = dict(epochs=10, batch_size=512, seed=0) if kind.startswith("tf") else {}
        model = CentroidRegressor(kind, size=9, psf_sigma=1.3, **kw).fit(patches, truth)
        model.info.pop("history", None)
        model.info.update(training={k: list(v) if isinstance(v, tuple) else v for k, v in RANGES.items()},
                          n_train=args.n, seed=2024, held_out_rmse_px=held_out_rmse(model),
                          script="bench/train_default_models.py")
        name = {"ridge": "ridge_default.npz", "tf-linear": "tf_linear_default.npz",
                "tf-cnn": "tf_cnn_default.npz"}[kind]
        model.save(out / name)
        print(f"{kind}: trained in {time.time() - t0:.1f} s, held-out RMSE {model.info['held_out_rmse_px']}"
              f" -> {out / name} ({(out / name).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
