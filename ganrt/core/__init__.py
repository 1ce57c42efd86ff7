"""The core every other layer builds on: the model-file schema, model kinds' registry, the session factory and
running, CUDA graphs, latents, the bundled files and the typed errors. Imports nothing above it."""
