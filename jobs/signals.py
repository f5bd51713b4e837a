"""What jobs tells the apps above it, which it may not import (billing delivers alerts)."""

from django.dispatch import Signal

# Sent after commit, once per quota whose alert thresholds an admission or the periodic
# budget check reached: ``alerts`` (the QuotaAlert rows just recorded, one per threshold),
# ``subject`` and ``text`` (what the managers were mailed).
quota_alerts_recorded = Signal()
