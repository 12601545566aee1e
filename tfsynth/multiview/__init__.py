"""TF-free generation of the multiview_shapes dataset: meshes -> 5 lit views + a ground-truth point cloud per model."""
