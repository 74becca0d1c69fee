"""Accuracy metrics and plots of a trained force field.

Field metrics are given for the full field and for its part perpendicular to the spin,
``h_perp = h - (h . S) S``, the part that drives LLG dynamics.  For each: RMSE and the coefficient of
determination ``R^2 = 1 - sum (pred - true)^2 / sum (true - mean(true))^2`` per Cartesian component
and over all components together.  Energies: MAE and RMSE of the energy per site and the MAE of the
total energy.  Local densities n_i (mu-conditioned models): R^2, MAE and RMSE.  Units of t1.
"""

from __future__ import annotations

import numpy as np

COMPONENTS = ("x", "y", "z")


def perpendicular(h: np.ndarray, spins: np.ndarray) -> np.ndarray:
    """Part of ``h`` perpendicular to the (unit) spins, same shape (..., 3)."""
    return h - (h * spins).sum(-1, keepdims=True) * spins


def r2_score(pred: np.ndarray, true: np.ndarray) -> float:
    ss_res = float(((pred - true) ** 2).sum())
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def field_metrics(pred: np.ndarray, true: np.ndarray, spins: np.ndarray) -> dict:
    """RMSE and R^2 per component and overall, for the full and the perpendicular field."""
    out = {}
    for part, (p, t) in {"full": (pred, true),
                         "perpendicular": (perpendicular(pred, spins), perpendicular(true, spins))
                         }.items():
        m = {"rmse": float(np.sqrt(((p - t) ** 2).mean())), "r2": r2_score(p, t)}
        for c, name in enumerate(COMPONENTS):
            m[f"rmse_{name}"] = float(np.sqrt(((p[..., c] - t[..., c]) ** 2).mean()))
            m[f"r2_{name}"] = r2_score(p[..., c], t[..., c])
        out[part] = m
    return out


def energy_metrics(pred: np.ndarray, true: np.ndarray, n_sites: np.ndarray) -> dict:
    """Energy errors: per site (MAE, RMSE) and total (MAE), for energies (M,) on n_sites (M,)."""
    d = (np.asarray(pred) - np.asarray(true))
    return {"mae_per_site": float(np.abs(d / n_sites).mean()),
            "rmse_per_site": float(np.sqrt(((d / n_sites) ** 2).mean())),
            "mae": float(np.abs(d).mean())}


def density_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """Errors of the local densities n_i: R^2, MAE and RMSE over all sites."""
    d = np.asarray(pred) - np.asarray(true)
    return {"r2": r2_score(np.asarray(pred), np.asarray(true)), "mae": float(np.abs(d).mean()),
            "rmse": float(np.sqrt((d ** 2).mean()))}


def parity_plot(path, pred: np.ndarray, true: np.ndarray, spins: np.ndarray,
                energy_pred: np.ndarray, energy_true: np.ndarray, n_sites: np.ndarray,
                metrics: dict, title: str = "") -> None:
    """Predicted vs exact: the three field components, the perpendicular field, energy per site."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4), layout="constrained")
    axes = fig.subplots(1, 5)
    perp_p, perp_t = perpendicular(pred, spins), perpendicular(true, spins)
    panels = [(pred[..., c], true[..., c], f"$h_{n}$", metrics["fields"]["full"][f"r2_{n}"])
              for c, n in enumerate(COMPONENTS)]
    panels.append((perp_p, perp_t, r"$h_\perp$ (all components)",
                   metrics["fields"]["perpendicular"]["r2"]))
    for ax, (p, t, label, r2) in zip(axes, panels):
        _parity(ax, t.ravel(), p.ravel(), label, f"$R^2$ = {r2:.4f}")
    e = metrics["energy"]
    _parity(axes[4], energy_true / n_sites, energy_pred / n_sites, "energy per site",
            f"MAE = {e['mae_per_site']:.2e}")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)


def _parity(ax, true, pred, label, note) -> None:
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
    ax.scatter(true, pred, s=2, alpha=0.4, rasterized=True)
    ax.set_xlabel(f"exact {label}")
    ax.set_ylabel(f"model {label}")
    ax.set_title(note, fontsize=10)


def loss_plot(path, history: list[dict], title: str = "") -> None:
    """Training and validation loss per epoch (log scale) and the learning rate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    ep = [h["epoch"] for h in history]
    ax.semilogy(ep, [h["train_loss"] for h in history], label="training loss")
    ax.semilogy(ep, [h["val_loss"] for h in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean squared field error + energy term)")
    ax2 = ax.twinx()
    ax2.semilogy(ep, [h["lr"] for h in history], color="0.5", ls=":", label="learning rate")
    ax2.set_ylabel("learning rate")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right")
    if title:
        ax.set_title(title)
    fig.savefig(path, dpi=110)
