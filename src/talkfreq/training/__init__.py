"""Lightning training: the shared trainer factory and one module per trainable kind (syncnet, stage1, refiner)."""
