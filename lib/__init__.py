"""The toolkit's shared machinery: the NB101 space and its record format, metrics, outputs, devices,
and the building blocks of the stages."""
