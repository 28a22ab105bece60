"""Independent references written from the published descriptions, shared by tests."""

from __future__ import annotations

MASK64 = (1 << 64) - 1


def splitmix_permutation(n: int, seed: int) -> list[int]:
    """SplitMix64 (Steele, Lea, Flood 2014) driving a Fisher-Yates shuffle with rejection
    sampling (no modulo bias): the permutation msce's frame-shuffle probe must produce."""
    state = seed

    def nxt() -> int:
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    p = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        limit = MASK64 - (MASK64 % bound)
        while True:
            v = nxt()
            if v < limit:
                break
        j = v % bound
        p[i], p[j] = p[j], p[i]
    return p
