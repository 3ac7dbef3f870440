"""NumPy runtimes for what we ship: ``mlprogram`` (the .mlpackage files), ``neuralnetwork`` (the .mlmodel files)."""
