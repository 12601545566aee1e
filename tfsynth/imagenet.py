"""ImageNet's per-channel mean and standard deviation on [0, 1] pixels, as torchvision's `Normalize` uses them
(classification, segmentation and the AIST feature network alike); one definition for the whole project (TF-free)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
