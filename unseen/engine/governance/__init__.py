"""Governance: vouchers, ledgers, audits, policies, assets, grades and consent."""
