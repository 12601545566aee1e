"""scikit-learn's PLSRegression (NIPALS) computed from image x image kernels: same numbers, far less work.

For wide features (images << features, e.g. 3,200 images x 100,000 units of a CNN layer) every quantity
scikit-learn's `PLSRegression(n_components, scale=False)` computes on the way to a prediction depends on the
features only through inner products between images:

    K      = Xc Xc^T        (n_train x n_train, training features centred with the training mean)
    K_test = (X_test - mean) Xc^T

Writing each x-weight vector as w_k = Xc^T r_k ("dual weights" r_k, one n-vector) turns every step of the
NIPALS power iteration, the deflation X_k = (I - t t^T / t't) X_{k-1} and the final
`coef_ = W pinv(P^T W) Q^T` into n x n algebra:

    ||X_k^T u||^2 = u^T K_k u,   x_scores t = K_k v,   ||w - w_old||^2 = (v - v_old)^T (t - t_old),
    K_k = Pi_k K_{k-1} Pi_k,     P^T W = diag(1 / t't) T^T K R,   prediction = K_test R pinv(P^T W) Q^T + mean(Y).

The iteration is scikit-learn's step for step (same start column, same eps guards, same convergence test
`||w - w_old||^2 < tol` with the first iteration never converged unless Y has one column, same max_iter, same
y-residual masking and early stop), so predictions agree to floating-point rounding (~1e-12 relative for
float64 features; ~1e-8 for float32 ones, because scikit-learn centres float32 test inputs in float32), not
merely to a tolerance. Only the sign convention of the weights (`svd_flip`) is not reproduced: predictions are
invariant to it.

Cost: one GEMM for K (n^2 p, compute-bound BLAS-3) instead of scikit-learn's 2 x iterations x components
memory-bound passes over X; in cross-validation one Gram matrix of all images serves every split
(`center_kernel` derives each split's centred train/test kernels from it).

TF-free (numpy, scipy, numba for the iteration loop).
"""
from __future__ import annotations

import warnings

import numba
import numpy as np
from scipy.linalg import pinv

__all__ = ["gram", "center_kernel", "KernelPLS", "kernel_pls_predict"]

_EPS = np.finfo(np.float64).eps


def gram(features: np.ndarray, chunk_bytes: int = 256 * 2**20) -> tuple[np.ndarray, np.ndarray]:
    """(G, mean): G = (X - mean)(X - mean)^T in float64, X (n, p) of any float dtype, accumulated over column chunks.

    Centring with the mean of all rows first keeps the later per-split re-centring (`center_kernel`) free of
    cancellation when features have large means (ReLU activations). Memory: n x chunk float64 at a time.
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (images, units), got shape {x.shape}")
    n, p = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    out = np.zeros((n, n), np.float64)
    step = max(1, int(chunk_bytes // (8 * max(n, 1))))
    for start in range(0, p, step):
        block = x[:, start:start + step].astype(np.float64) - mean[start:start + step]
        out += block @ block.T
    return out, mean


def center_kernel(g: np.ndarray, train: np.ndarray, test: np.ndarray | None = None):
    """Centred train kernel (and test-vs-train kernel) from a Gram matrix of (globally centred) features.

    With X the rows of the Gram's features and m the mean of X[train], returns
    K = (X[train] - m)(X[train] - m)^T and K_test = (X[test] - m)(X[train] - m)^T.
    """
    k = g[np.ix_(train, train)]
    col = k.mean(axis=0)
    grand = col.mean()
    k_c = k - col[None, :] - col[:, None] + grand
    if test is None:
        return k_c
    kt = g[np.ix_(test, train)]
    kt_c = kt - col[None, :] - kt.mean(axis=1, keepdims=True) + grand
    return k_c, kt_c


@numba.njit(cache=True, nogil=True)
def _power_iteration(kk, yk, u, max_iter, tol):
    """scikit-learn's _get_first_singular_vectors_power_method (mode A) in dual form: (v, t, n_iter).

    x_weights = X_k^T v, x_scores t = K_k v; the convergence test ||w - w_old||^2 = (v - v_old)'(t - t_old).
    """
    eps = np.finfo(np.float64).eps
    q = yk.shape[1]
    ykt = np.ascontiguousarray(yk.T)
    v_old = np.zeros_like(u)
    t_old = np.zeros_like(u)
    v = u
    t = u
    n_iter = 0
    for it in range(max_iter):
        n_iter = it + 1
        uu = np.dot(u, u)
        ku = np.dot(kk, u)
        norm = np.sqrt(max(np.dot(u, ku), 0.0)) / uu  # ||X_k^T u|| / (u'u)
        scale = 1.0 / uu / (norm + eps)
        v = u * scale  # x_weights = X_k^T v
        t = ku * scale  # x_scores = K_k v
        c = np.dot(ykt, t) / np.dot(t, t)  # y_weights
        u = np.dot(yk, c) / (np.dot(c, c) + eps)  # y_scores
        if q == 1:
            break
        if it > 0 and np.dot(v - v_old, t - t_old) < tol:
            break
        v_old = v
        t_old = t
    return v, t, n_iter


@numba.njit(cache=True, nogil=True)
def _nipals_dual(k, yk, n_components, max_iter, tol):
    """The NIPALS component loop of scikit-learn's _PLS.fit (regression deflation) on the kernel K = Xc Xc'.

    Returns dual weights R (w_k = Xc' R[:, k]), x_scores T, y_loadings Q, t't per component, iterations per
    component, the number of components fitted and whether the loop stopped on a constant y residual.
    """
    eps = np.finfo(np.float64).eps
    n, q = yk.shape
    kk = k.copy()
    r_dual = np.zeros((n, n_components))
    scores = np.zeros((n, n_components))
    y_load = np.zeros((q, n_components))
    tts = np.zeros(n_components)
    n_iter = np.zeros(n_components, np.int64)
    done = 0
    stop = False
    exhausted = False
    trace0 = 0.0
    for i in range(n):
        trace0 += k[i, i]
    for comp in range(n_components):
        for j in range(q):  # yk[:, all(|yk| < 10 eps)] = 0
            small = True
            for i in range(n):
                if abs(yk[i, j]) >= 10 * eps:
                    small = False
                    break
            if small:
                yk[:, j] = 0.0
        start = -1
        for j in range(q):  # first column with any |value| > eps
            for i in range(n):
                if abs(yk[i, j]) > eps:
                    start = j
                    break
            if start >= 0:
                break
        if start < 0:
            stop = True
            break
        v, t, it = _power_iteration(kk, yk, yk[:, start].copy(), max_iter, tol)
        n_iter[comp] = it
        tt = np.dot(t, t)
        r = v.copy()  # w_k = X_k' v = Xc' Pi_k v: project out the earlier (mutually orthogonal) scores
        for j in range(done):
            r -= scores[:, j] * (np.dot(scores[:, j], v) / tts[j])
        kt = np.dot(kk, t)
        ktt = np.dot(t, kt)
        for a in range(n):  # K_k = Pi K_{k-1} Pi with Pi = I - t t' / t't
            for b in range(n):
                kk[a, b] += (t[a] * t[b] * ktt / tt - t[a] * kt[b] - kt[a] * t[b]) / tt
        q_k = np.dot(np.ascontiguousarray(yk.T), t) / tt
        for a in range(n):
            for b in range(q):
                yk[a, b] -= t[a] * q_k[b]
        r_dual[:, comp] = r
        scores[:, comp] = t
        y_load[:, comp] = q_k
        tts[comp] = tt
        done += 1
        trace = 0.0
        for i in range(n):
            trace += kk[i, i]
        if comp + 1 < n_components and trace <= 1e-12 * trace0:  # the features are used up: rank < n_components
            exhausted = True
            break
    return r_dual, scores, y_load, tts, n_iter, done, stop, exhausted


class KernelPLS:
    """PLSRegression(n_components, scale=False, algorithm='nipals') fitted from a centred kernel.

    fit(K, Y, n_features): K = Xc Xc^T of the training images (see `center_kernel`), Y (n, q) raw targets,
    n_features = p (only for scikit-learn's `n_components <= min(n, p)` check).
    predict(K_test): K_test = (X_test - mean_train) Xc^T -> (n_test, q).
    """

    def __init__(self, n_components: int = 2, max_iter: int = 500, tol: float = 1e-06):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, k: np.ndarray, y: np.ndarray, n_features: int | None = None) -> "KernelPLS":
        k = np.asarray(k, np.float64)
        y = np.array(y, np.float64, copy=True)
        if y.ndim == 1:
            y = y[:, None]
        n = k.shape[0]
        if k.shape != (n, n) or y.shape[0] != n:
            raise ValueError(f"kernel {k.shape} and targets {y.shape} do not match")
        if n < 2:
            raise ValueError(f"PLS needs at least 2 training samples, got {n}")
        bound = min(n, n_features) if n_features is not None else n
        if self.n_components > bound:
            raise ValueError(f"`n_components` upper bound is {bound}. Got {self.n_components} instead. "
                             "Reduce `n_components`.")
        self.y_mean_ = y.mean(axis=0)
        r_dual, scores, y_load, tts, n_iter, done, stop, exhausted = _nipals_dual(
            np.ascontiguousarray(k), np.ascontiguousarray(y - self.y_mean_), self.n_components, self.max_iter, self.tol)
        self.n_iter_ = n_iter[:done].tolist()
        if y.shape[1] > 1:
            for _ in range(int(np.sum(n_iter[:done] == self.max_iter))):
                warnings.warn("Maximum number of iterations reached")
        if stop:
            warnings.warn(f"y residual is constant at iteration {done}")
        r_dual, scores, y_load, tts = r_dual[:, :done], scores[:, :done], y_load[:, :done], tts[:done]
        with np.errstate(invalid="ignore", divide="ignore"):
            pw = (scores / tts).T @ (k @ r_dual)  # P^T W
        if exhausted or not np.isfinite(pw).all():
            raise ValueError(f"PLS with n_components={self.n_components} is undefined here: the {n} training images' "
                             f"features span only ~{done} dimensions (duplicate or constant images?); scikit-learn's "
                             "PLSRegression breaks down on such data too (NaN or meaningless components). "
                             "Reduce n_components.")
        self.dual_coef_ = r_dual @ pinv(pw, check_finite=False) @ y_load.T  # (n, q): coef_ = Xc^T dual_coef_
        self.x_scores_ = scores
        self.n_components_fitted_ = done
        return self

    def predict(self, k_test: np.ndarray) -> np.ndarray:
        return np.asarray(k_test, np.float64) @ self.dual_coef_ + self.y_mean_


def kernel_pls_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_components: int = 25,
                       max_iter: int = 500, tol: float = 1e-06) -> np.ndarray:
    """Drop-in for `PLSRegression(n_components, scale=False).fit(x_train, y_train).predict(x_test)`."""
    x_train = np.asarray(x_train)
    mean = x_train.mean(axis=0, dtype=np.float64)
    xc = x_train.astype(np.float64) - mean
    k = xc @ xc.T
    k_test = (np.asarray(x_test, np.float64) - mean) @ xc.T
    model = KernelPLS(n_components, max_iter=max_iter, tol=tol).fit(k, y_train, n_features=x_train.shape[1])
    pred = model.predict(k_test)
    return pred[:, 0] if np.ndim(y_train) == 1 else pred
