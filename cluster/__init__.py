"""What the cluster should hold, rendered from the portal's departments and quotas, and what
it holds, read back from Prometheus (kube-state-metrics and Kueue's metrics)."""
