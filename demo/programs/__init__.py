"""Small programs the demo's job kinds run, so that the whole job path (admission, the
broker, a worker, output files, GPU-seconds in Prometheus and in the ledger) works on any
machine, without a GPU or model weights.

They use only the standard library and the ``espeak-ng`` and ``ffmpeg`` binaries: a job
runs them with ``{python} -m demo.programs.<name>`` in its own folder, outside Django.
"""
