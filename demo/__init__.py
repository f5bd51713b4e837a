"""The stage set: the demo scenario (departments, people, quotas, prices and the GPU history
they would have made), synthetic Prometheus history and a local Prometheus to serve it, the
demo job kinds' programs, and ``manage.py seed_demo`` / ``run_demo``. No product app
imports it; ``make demo`` and the tests do."""
