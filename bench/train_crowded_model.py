"""Train the packaged crowded-field detector (python/spotfit/models/crowded_default.npz).

    python bench/train_crowded_model.py [--steps 5000] [--out python/spotfit/models/crowded_default.npz]

Fresh simulated 32x32 frames every step (spotfit.ml.crowded_training_set, DEFAULT_RANGES), batch 32, Adam with
a cosine-decayed rate; ~12-20 min on 2 CPU cores (20 min for the packaged model, the machine shared). The EPFL HD figures in docs/crowded.md come from this model.
"""
import argparse
import time
from pathlib import Path

from spotfit.ml import CrowdedDetector


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "python" / "spotfit" / "models"
                                         / "crowded_default.npz"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    det = CrowdedDetector().fit(steps=a.steps, seed=a.seed, verbose=2)
    det.save(a.out)
    print(f"{a.out}: {a.steps} steps in {time.perf_counter() - t0:.0f} s, validation loss {det.info['val_loss']:.4f}")


if __name__ == "__main__":
    main()
