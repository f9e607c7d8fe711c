"""Budgets: the governor that reserves every attempt's worst case against each cap, and the forecast.

`governor` admits, settles and refuses; `forecast` projects the day's spend from the ledger.
"""
