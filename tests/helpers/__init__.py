"""Helpers shared by the tests: tiny Hugging Face models, offline runs, a scripted chat server, tiny
GGUF files, data-parallel runs, export fixtures and NeuralNetwork builders."""
