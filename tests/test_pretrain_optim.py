"""TorchSGD = torch.optim.SGD (coupled weight decay, PyTorch momentum) and MultiStepSchedule = MultiStepLR."""
import keras
import numpy as np
import pytest

from tfsynth.training.optim import MultiStepSchedule, TorchSGD


def _run(optimizer, w0, grads):
    var = keras.Variable(np.array(w0, np.float32))
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, np.float32)), var)])
    return np.asarray(var.numpy(), np.float64)


def test_torch_sgd_matches_pytorch_on_two_hand_computed_steps():
    # torch.optim.SGD([w], lr, momentum=0.9, weight_decay=0.01); lr 0.1 for step 1, 0.01 for step 2 (MultiStepLR).
    #   step 1: d = g1 + 0.01 w0 = [0.51, 0.48];  buf = d;                   w1 = w0 - 0.1 buf   = [0.949, -2.048]
    #   step 2: d = g2 + 0.01 w1 = [-0.99051, 1.97952]; buf = 0.9 buf + d = [-0.53151, 2.41152]
    #           w2 = w1 - 0.01 buf = [0.9543151, -2.0721152]
    schedule = MultiStepSchedule(0.1, steps_per_epoch=1, milestones=[1], gamma=0.1)
    opt = TorchSGD(schedule, momentum=0.9, torch_weight_decay=0.01)
    w2 = _run(opt, [1.0, -2.0], [[0.5, 0.5], [-1.0, 2.0]])
    np.testing.assert_allclose(w2, [0.9543151, -2.0721152], rtol=0, atol=1e-6)

    # Keras's own SGD with (decoupled) weight_decay gives a different trajectory: that is why TorchSGD exists.
    keras_sgd = keras.optimizers.SGD(MultiStepSchedule(0.1, 1, [1], 0.1), momentum=0.9, weight_decay=0.01)
    assert np.abs(_run(keras_sgd, [1.0, -2.0], [[0.5, 0.5], [-1.0, 2.0]]) - w2).max() > 1e-4


def test_torch_sgd_without_momentum_and_nesterov():
    # momentum 0: w1 = w0 - lr (g + wd w0) = 1 - 0.1 (0.5 + 0.1) = 0.94
    np.testing.assert_allclose(_run(TorchSGD(0.1, torch_weight_decay=0.1), [1.0], [[0.5]]), [0.94], atol=1e-7)
    # nesterov (PyTorch): d = g + wd w; buf = m buf + d; w -= lr (d + m buf)
    #   step 1: d = 0.6, buf = 0.6, w1 = 1 - 0.1 (0.6 + 0.54) = 0.886
    #   step 2: d = 0.5 + 0.0886 = 0.5886, buf = 0.54 + 0.5886 = 1.1286, w2 = 0.886 - 0.1 (0.5886 + 1.01574) = 0.725566
    opt = TorchSGD(0.1, momentum=0.9, nesterov=True, torch_weight_decay=0.1)
    np.testing.assert_allclose(_run(opt, [1.0], [[0.5], [0.5]]), [0.725566], atol=1e-6)


def test_weight_decay_reaches_every_trainable_variable():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    before = [v.numpy().copy() for v in model.trainable_variables]
    for v in model.trainable_variables:  # make every variable (BN beta, biases too) non-zero
        v.assign(np.full(v.shape, 2.0, np.float32))
    opt = TorchSGD(0.1, momentum=0.9, torch_weight_decay=0.5)
    opt.apply_gradients([(keras.ops.zeros(v.shape), v) for v in model.trainable_variables])
    assert len(before) == 4  # kernel, bias, gamma, beta
    for v in model.trainable_variables:  # zero gradient: w -= lr * wd * w  ->  2 - 0.1 * 0.5 * 2 = 1.9
        np.testing.assert_allclose(v.numpy(), 1.9, atol=1e-6)


def test_torch_sgd_rejects_decoupled_weight_decay():
    with pytest.raises(ValueError, match="torch_weight_decay"):
        TorchSGD(0.1, weight_decay=1e-4)


def test_multistep_schedule_boundaries():
    s = MultiStepSchedule(0.1, steps_per_epoch=10, milestones=(30, 60), gamma=0.1)
    lr = {step: float(s(step)) for step in (0, 299, 300, 599, 600, 899)}
    np.testing.assert_allclose([lr[0], lr[299], lr[300], lr[599], lr[600], lr[899]],
                               [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    assert [s.lr_at_epoch(e) for e in (0, 29, 30, 59)] == [0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    assert s.lr_at_epoch(60) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="increasing"):
        MultiStepSchedule(0.1, 10, (60, 30))


def test_optimizer_and_schedule_survive_model_saving(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=TorchSGD(MultiStepSchedule(0.1, 7, (30, 60), 0.1), momentum=0.9,
                                     torch_weight_decay=1e-4), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    opt = loaded.optimizer
    assert isinstance(opt, TorchSGD) and opt.torch_weight_decay == 1e-4 and opt.momentum == 0.9
    assert isinstance(opt._learning_rate, MultiStepSchedule)
    assert opt._learning_rate.get_config() == {"base_lr": 0.1, "steps_per_epoch": 7, "milestones": [30, 60],
                                               "gamma": 0.1}
    assert int(opt.iterations.numpy()) == 1
    np.testing.assert_array_equal(opt.variables[-1].numpy(), model.optimizer.variables[-1].numpy())
