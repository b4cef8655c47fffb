"""Identifiers: unified social credit codes of enterprises and the strides that scramble ids."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unseen.engine.data.synth.columns import Digits, Lookup, Text
from unseen.engine.data.synth.province import CITY_CODE

__all__ = ["ACCOUNT_STRIDE", "ORG_STRIDE", "uscc", "uscc_check"]

# Unified social credit codes (GB 32100-2015): 18 characters, the last a check
# character over this 31-letter alphabet with these position weights.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
# Multipliers coprime to 10 scramble a row index into a unique fixed-width number,
# so identifiers do not give away row order.
ORG_STRIDE = 387_420_489  # 3**18, coprime to 10**9
ACCOUNT_STRIDE = 7_919_371  # coprime to 10**12


def uscc_check(city: np.ndarray, org: np.ndarray) -> np.ndarray:
    """The GB 32100 check character (as an alphabet index) of '91' + region + org."""
    region_digits = np.array([[int(c) for c in code] for code in CITY_CODE])
    region = region_digits @ _USCC_WEIGHTS[2:8]
    total = 9 * _USCC_WEIGHTS[0] + 1 * _USCC_WEIGHTS[1] + region[city]
    for position in range(9):
        digit = org // 10 ** (8 - position) % 10
        total = total + digit * _USCC_WEIGHTS[8 + position]
    return ((31 - total % 31) % 31).astype(np.int8)


def uscc(ent: Mapping[str, np.ndarray], who: np.ndarray | None = None) -> Text:
    """Credit codes of enterprises ``who`` (all when None) as a lazy string column."""
    city, org, check = ent["_city"], ent["_org"], ent["_check"]
    if who is not None:
        city, org, check = city[who], org[who], check[who]
    prefixes = tuple(f"91{code}" for code in CITY_CODE)
    alphabet = tuple(_USCC_ALPHABET)
    parts = (Lookup(city.astype(np.int8), prefixes), Digits(org, 9), Lookup(check, alphabet))
    return Text(parts, len(org))
