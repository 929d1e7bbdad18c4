"""What nasbench.api stands on: NB101's config, graph utilities and ModelSpec, as google-research/nasbench
names them (config, graph_util, model_spec), and this toolkit's file behind the API (dataset_file) with the
read-only dicts built over it (statistics)."""
