"""A governed federation with ``loans`` served in dp mode by both banks (tests of issue 10).

Built on :mod:`tests.governance_fixtures`' world: the banks' config files get a
``[tables.loans.dp]`` section (unit ``account``, whose rows live at both banks,
``amount`` clamped to ``[0, AMOUNT_MAX]``), and vouchers carry a privacy budget.
"""

from __future__ import annotations

from pathlib import Path

from tests.governance_fixtures import World, build_world

AMOUNT_MAX = 100_000
MAX_ROWS = 6  # each account has 6 rows at each bank
RHO = 0.5  # per query


def dp_section(rho: float = RHO, honest: int = 1) -> str:
    return (
        "\n[tables.loans.dp]\n"
        'unit = "account"\n'
        f"max_rows = {MAX_ROWS}\n"
        f"rho = {rho!r}\n"
        f"honest_holders = {honest}\n"
        "unit_holders = 2\n"
        f"bounds = {{ amount = [0, {AMOUNT_MAX}], rate = [0, 1] }}\n"
    )


def build_dp_world(root: Path, rho: float = RHO, honest: int = 1) -> World:
    """The governance test world with ``loans`` in dp mode at both banks."""
    world = build_world(root)
    for bank in ("bank-a", "bank-b"):
        path = world.configs[bank]
        path.write_text(path.read_text() + dp_section(rho, honest))
    return world


def dp_vouchers(world: World, grantee: str, rho: float | str) -> list[str]:
    """Vouchers for the three holders, each with the privacy budget ``rho``."""
    return [world.voucher(h, grantee, privacy_rho=rho) for h in ("bank-a", "bank-b", "grid")]
