"""Semantic segmentation: metrics, COCO conversion, training and evaluation of FCN models.

TensorFlow-free (NumPy / pycocotools / matplotlib; a test checks it in a fresh process):
    metrics     streaming confusion matrices -> micro/macro accuracy, IoU, F1 (= scikit-learn), confidence intervals
    coco        COCO instance annotations -> 21-class VOC label maps (torchvision's segmentation reference)
    report      tables in the layout of Holm (2022) Tables 2-3, F1 / metric curves (Figures 4-5)
    visualize   colour palettes and mask overlays
    configs     every hyper-parameter of a `python -m train.segment` experiment (one function per experiment)
TensorFlow:
    pipeline    tf.data input: decode, random resize / flip / crop, padded batches
    evaluation  streaming evaluation of a Keras model over a dataset
    optim       poly learning-rate schedule, per-variable learning-rate multipliers
    training    the pre-train -> transfer -> fine-tune job behind `python -m train.segment`
"""
