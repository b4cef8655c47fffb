"""NodeMetrics' voucher gauges: set per voucher id, and bounded to the most recent vouchers."""

from __future__ import annotations

from unseen.engine.transport import telemetry
from unseen.engine.transport.telemetry import NodeMetrics


def _value(metrics: NodeMetrics, name: str, voucher: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"voucher": voucher})


def test_voucher_gauges_hold_the_latest_value_and_forget_the_least_recent(monkeypatch):
    monkeypatch.setattr(telemetry, "MAX_VOUCHERS", 3)
    metrics = NodeMetrics("holder", "h")
    metrics.voucher_left("quota", "v-1", 4)
    metrics.voucher_left("rho", "v-1", 0.75)
    metrics.voucher_left("quota", "v-1", 3)
    assert _value(metrics, "unseen_voucher_quota_left", "v-1") == 3
    assert _value(metrics, "unseen_voucher_rho_left", "v-1") == 0.75
    metrics.voucher_left("quota", "v-2", 9)
    metrics.voucher_left("rho", "v-1", 0.5)  # v-1's rho is now the most recent
    metrics.voucher_left("quota", "v-3", 1)  # a fourth series: the oldest (v-1's quota) goes
    assert _value(metrics, "unseen_voucher_quota_left", "v-1") is None
    assert _value(metrics, "unseen_voucher_rho_left", "v-1") == 0.5
    assert _value(metrics, "unseen_voucher_quota_left", "v-2") == 9
    assert _value(metrics, "unseen_voucher_quota_left", "v-3") == 1
