"""The province: its 21 prefecture-level cities and its industries, with their weights.

Enterprise and account counts follow a city's economic weight; how common an
industry is sets how many enterprises belong to it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CITIES", "CITY_CODE", "CITY_WEIGHT", "INDUSTRIES", "INDUSTRY_WEIGHT"]

CITIES = (
    "Guangzhou",
    "Shenzhen",
    "Zhuhai",
    "Shantou",
    "Foshan",
    "Shaoguan",
    "Heyuan",
    "Meizhou",
    "Huizhou",
    "Shanwei",
    "Dongguan",
    "Zhongshan",
    "Jiangmen",
    "Yangjiang",
    "Zhanjiang",
    "Maoming",
    "Zhaoqing",
    "Qingyuan",
    "Chaozhou",
    "Jieyang",
    "Yunfu",
)
# Relative economic weight of each city (enterprise and account counts follow it).
CITY_WEIGHT = np.array(
    [18, 20, 3, 3, 10, 1.2, 1, 1.2, 4, 0.8, 10, 3, 3, 1, 2, 1.5, 1.5, 1.2, 1, 1.5, 0.8]
)
# Administrative division codes (GB/T 2260), the region part of a credit code.
CITY_CODE = (
    "440100",
    "440300",
    "440400",
    "440500",
    "440600",
    "440200",
    "441600",
    "441400",
    "441300",
    "441500",
    "441900",
    "442000",
    "440700",
    "441700",
    "440800",
    "440900",
    "441200",
    "441800",
    "445100",
    "445200",
    "445300",
)
INDUSTRIES = (
    "manufacturing",
    "retail",
    "wholesale",
    "construction",
    "logistics",
    "software",
    "catering",
    "agriculture",
    "textiles",
    "electronics",
    "chemicals",
    "services",
)
# How common each industry is (relative share of enterprises).
INDUSTRY_WEIGHT = np.array([14, 16, 10, 7, 6, 5, 9, 3, 5, 5, 2, 18])
