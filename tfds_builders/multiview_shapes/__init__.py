"""multiview_shapes: multi-view renders + ground-truth point clouds for DPC shape & pose (see README.md)."""
