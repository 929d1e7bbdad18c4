"""The toolkit's machinery, one concern a module: the NB101 schema, cells, network, space and its record
format; features, fitting, inference and search; metrics, outputs, devices, errors; CIFAR-10 and NB101's
training protocol. It imports only itself and third-party packages (pyproject.toml's contracts)."""
