"""The programs beside the tutorials: the report (run_all.sh), the sweeps and the local cluster
launcher. Each is run as `python -m tools.<name>`; the tutorials never import them."""
