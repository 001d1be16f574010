"""Coverage-guided fuzz targets (atheris); run them with ``scripts/fuzz``, see docs/fuzzing.md."""
