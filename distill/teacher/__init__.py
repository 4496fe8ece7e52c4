"""The teacher stage: serve the teacher, sample k traces per prompt."""
