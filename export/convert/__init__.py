"""Folder -> Core ML: read and validate the input folder, decide fp16, convert the ML Programs."""
