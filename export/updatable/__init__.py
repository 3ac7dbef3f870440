"""The updatable models: their update parameters, the head, the pipeline, Core ML's rules, the learning rate."""
