"""``recotrack check``: the read model against a recomputation from the stored orders."""

from __future__ import annotations

from ..store.readmodel import ReadModel


def check_site(reads: ReadModel, site: str) -> list[str]:
    """Every difference between the stored statistics and a recomputation, and every order
    whose stored state its lines contradict; empty if none."""
    stored, fresh = reads.stored(site), reads.recompute(site)
    found = reads.state_errors(site)
    for name in ("products", "pairs", "days"):
        have, want = getattr(stored, name), getattr(fresh, name)
        for key in sorted(set(have) | set(want), key=str):
            if have.get(key) != want.get(key):
                found.append(f"{name} {key}: stored {have.get(key)}, recomputed {want.get(key)}")
    return found
