"""Physics of the LLG engine against independent results: exact-solver relaxation toward Neel order,
the Langevin function for independent spins, and Metropolis Monte Carlo for a Heisenberg magnet."""

import numpy as np
import pytest

import itinerant as it
from itinerant.forcefields import Heisenberg, Zeeman
from itinerant.observables import staggered_magnetization
from itinerant.spins import neel, random_spins


def test_exact_llg_relaxes_half_filled_square_lattice_toward_neel(one_thread):
    """J = 6, n = 1/2: the electrons mediate antiferromagnetic exchange ~ t^2/J; damped LLG from
    random spins lowers the energy monotonically and builds up staggered order."""
    lat = it.Lattice.square(6)
    model = it.SDModel(lat, t=(1.0,), J=6.0, filling=0.5)
    solver = it.ExactSolver(model)
    s0 = random_spins(lat.N, 11)
    tr = it.LLG(solver, alpha=1.0, dt=0.1, integrator="sib").run(s0, steps=250, save_every=10)
    ms = np.linalg.norm([staggered_magnetization(s, lat) for s in tr.spins], axis=1)
    assert np.all(np.diff(tr.energy) < 0)
    assert ms[0] < 0.2 and ms[-1] > 0.85, ms[[0, -1]]
    assert np.all(np.diff(ms[5:]) > 0)  # steady growth once the first transient is over
    # ... toward the Neel state's energy.
    E_neel = solver.energy_and_fields(neel(lat))[0]
    assert tr.energy[-1] - E_neel < 0.1 * (tr.energy[0] - E_neel)


def langevin(x):
    return 1.0 / np.tanh(x) - 1.0 / x


@pytest.mark.parametrize("integrator", ["sib", "heun", "rk4"])
def test_independent_spins_follow_the_langevin_function(integrator):
    """<S.h/|h|> = coth(|h|/kT) - kT/|h| for spins in fields |h| = 0.5, 1, 2 (random directions).

    Spins are independent, so the spread of per-spin time averages gives an exact error bar.
    The same data rejects a noise strength without the 1/(1 + alpha^2) factor.
    """
    rng = np.random.default_rng(5)
    per, mags, kT, alpha, dt = 1000, np.array([0.5, 1.0, 2.0]), 0.5, 0.5, 0.02
    d = random_spins(per * len(mags), rng)
    hmag = np.repeat(mags, per)
    field = d * hmag[:, None]
    ff = Zeeman(field)
    sim = it.LLG(ff, alpha=alpha, dt=dt, kT=kT, integrator=integrator, seed=6)
    s = d.copy()
    E, h = sim.energy_and_fields(s)
    burn, run, every = int(15 / dt), int(30 / dt), int(0.25 / dt)
    acc = np.zeros(len(s))
    n = 0
    for k in range(burn + run):
        s = sim.step(s, h)
        if k >= burn and k % every == 0:
            acc += np.einsum("ia,ia->i", s, d)
            n += 1
    avg = acc / n
    for g, hm in enumerate(mags):
        a = avg[g * per:(g + 1) * per]
        mean, err = a.mean(), a.std(ddof=1) / np.sqrt(per)
        assert abs(mean - langevin(hm / kT)) < 4 * err + 2e-3, (hm, mean, langevin(hm / kT), err)
        if hm == 1.0:  # sigma^2 = 2 alpha kT (missing 1/(1+alpha^2)) heats the spins visibly
            assert abs(mean - langevin(hm / (kT * (1 + alpha**2)))) > 8 * err


# ---------------------------------------------------------------------- Metropolis reference


def metropolis_energy(lat, J, kT, sweeps, burn, replicas, rng, step=0.6):
    """Mean energy per site of the classical Heisenberg model E = -J sum_<ij> S_i.S_j.

    Checkerboard Metropolis (nearest-neighbour couplings only join opposite colours), proposals
    S' = normalize(S + step * gaussian), symmetric in S <-> S'.  Returns (mean, error) from the
    spread of independent replicas.
    """
    nbr, bonds = lat.neighbors(1), lat.bonds(1)
    colour = lat.coords.sum(1) % 2
    sites = [np.flatnonzero(colour == c) for c in (0, 1)]
    s = random_spins(replicas * lat.N, rng).reshape(replicas, lat.N, 3)
    energies = []
    for sweep in range(burn + sweeps):
        for idx in sites:
            h = J * s[:, nbr[idx]].sum(axis=2)  # (R, n, 3)
            old = s[:, idx]
            new = old + step * rng.normal(size=old.shape)
            new /= np.linalg.norm(new, axis=-1, keepdims=True)
            dE = -np.einsum("rna,rna->rn", new - old, h)
            accept = rng.random(dE.shape) < np.exp(-np.clip(dE, 0, None) / kT)
            s[:, idx] = np.where(accept[..., None], new, old)
        if sweep >= burn:
            e = -J * np.einsum("rba,rba->r", s[:, bonds[:, 0]], s[:, bonds[:, 1]]) / lat.N
            energies.append(e)
    per_replica = np.mean(energies, axis=0)
    return per_replica.mean(), per_replica.std(ddof=1) / np.sqrt(replicas)


class HeisenbergReplicas:
    """R independent copies of E = -J sum_<ij> S_i.S_j on ``lat``, integrated as one system of R*N
    spins (the LLG noise is independent per site, so the copies are independent samples)."""

    def __init__(self, lat, J, replicas):
        self.nbr, self.J, self.R, self.N = lat.neighbors(1), J, replicas, lat.N
        self.n_sites = replicas * lat.N

    def _fields(self, spins):
        s = spins.reshape(self.R, self.N, 3)
        return s, self.J * s[:, self.nbr].sum(axis=2)

    def energy_and_fields(self, spins):
        s, h = self._fields(spins)
        return -0.5 * np.einsum("rna,rna->", s, h), h.reshape(-1, 3)

    def energy_per_site(self, spins):
        s, h = self._fields(spins)
        return -0.5 * np.einsum("rna,rna->r", s, h) / self.N


def llg_energy(lat, kT, replicas, t_burn, t_run, dt, alpha=1.0, seed=0):
    """Mean energy per site from stochastic LLG; error from the spread of independent replicas."""
    ff = HeisenbergReplicas(lat, 1.0, replicas)
    sim = it.LLG(ff, alpha=alpha, dt=dt, kT=kT, seed=seed)
    s = random_spins(ff.n_sites, seed)
    E, h = sim.energy_and_fields(s)
    acc, n = np.zeros(replicas), 0
    for k in range(int((t_burn + t_run) / dt)):
        s = sim.step(s, h)
        E, h = sim.energy_and_fields(s)
        if k * dt >= t_burn and k % 10 == 0:
            acc += ff.energy_per_site(s)
            n += 1
    acc /= n
    return acc.mean(), acc.std(ddof=1) / np.sqrt(replicas)


@pytest.mark.parametrize("kT", [0.3, 0.8, 1.5])
def test_heisenberg_mean_energy_matches_metropolis(kT):
    """8x8 ferromagnet: stochastic LLG (24 independent copies) against Metropolis (16 chains).

    dt = 0.005: the schemes are weak order 1, and at dt = 0.01 the bias (about -0.005 per site at
    kT = 1.5) is already comparable to these error bars.
    """
    lat = it.Lattice.square(8)
    e_mc, err_mc = metropolis_energy(lat, 1.0, kT, sweeps=2000, burn=300, replicas=16,
                                     rng=np.random.default_rng(int(10 * kT)))
    e_llg, err_llg = llg_energy(lat, kT, replicas=24, t_burn=5.0, t_run=25.0, dt=0.005,
                                seed=int(100 * kT))
    tol = 4 * np.hypot(err_mc, err_llg)
    assert abs(e_llg - e_mc) < tol, (kT, e_llg, err_llg, e_mc, err_mc)
    # Sharp enough to matter: a noise strength off by (1 + alpha^2) = 2 would double (or halve)
    # the temperature and move e by 0.2 to 0.6 per site here.
    assert tol < 0.05
