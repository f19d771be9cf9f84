"""Imaging conditions: the camera model that turns a rendered scene into the output
image (reduction, colour cast, blur, sensor noise) and the hard conditions of the
target domain (night, rain, heavy noise, motion blur, low contrast)."""
import math

import cv2
import numpy as np
from PIL import Image, ImageDraw

from intrada.demo.synthetic.camera import SCALE

HARD_CONDITIONS = ('night', 'rain', 'noise', 'motion_blur', 'low_contrast')
CONDITIONS = ('normal',) + HARD_CONDITIONS


def finish_image(rng, domain, condition, col, emission, size):
    """Camera model: reduction to the output size, colour cast, blur, sensor noise and the
    rendering condition. col: float32 RGB at render size."""
    W, H = size
    if domain == 'source' and condition == 'normal':
        out = col[::SCALE, ::SCALE]
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    target = domain == 'target'
    if target:
        cast = 1.0 + rng.normal(0, 0.035, 3)
        tint = [(1.06, 1.0, 0.9), (0.92, 0.98, 1.08), (0.98, 1.04, 0.95), (1.0, 1.0, 1.0)][int(rng.integers(4))]
        gain = (cast * np.asarray(tint) * rng.uniform(0.88, 1.1)).astype(np.float32)
        gamma = rng.uniform(0.9, 1.15)
        noise_sigma = rng.uniform(1.5, 4.0) / 255.0
        blur_sigma = rng.uniform(0.45, 0.8)
    else:
        gain, gamma, noise_sigma, blur_sigma = np.ones(3, np.float32), 1.0, 0.0, 0.0
    img = col
    if condition == 'night':
        dark = rng.uniform(0.10, 0.2)
        tint = [(1.0, 0.8, 0.55), (0.7, 0.8, 1.0)][int(rng.integers(2))]
        img = img * (dark * np.asarray(tint, np.float32))
        if emission is not None:
            glow = cv2.GaussianBlur(emission, (0, 0), sigmaX=2.5 * SCALE)
            img = np.maximum(img, emission * 0.95) + 0.8 * glow
        noise_sigma = rng.uniform(7.0, 13.0) / 255.0
        blur_sigma = rng.uniform(0.7, 1.1)
    img = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (W, H), interpolation=cv2.INTER_AREA)
    if target:
        img = np.clip(img * gain, 0, 1)
        if gamma != 1.0:
            img = img ** np.float32(gamma)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=blur_sigma)
    if condition == 'rain':
        img = img * rng.uniform(0.6, 0.8)
        mean = img.mean(axis=(0, 1), keepdims=True)
        img = mean + (img - mean) * rng.uniform(0.55, 0.75)
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.9, 1.4))
        streaks = Image.new('L', (W, H), 0)
        d = ImageDraw.Draw(streaks)
        slant = rng.uniform(-0.35, 0.35)
        n = int(W * H / rng.uniform(35.0, 70.0))
        x0, y0 = rng.uniform(-5, W + 5, n), rng.uniform(-5, H, n)
        length, level = rng.uniform(3.0, 9.0, n), rng.integers(90, 200, n)
        for i in range(n):
            d.line([(x0[i], y0[i]), (x0[i] + slant * length[i], y0[i] + length[i])], fill=int(level[i]), width=1)
        a = np.asarray(streaks, np.float32)[..., None] * np.float32(0.55 / 255.0)
        img = img * (1 - a) + 0.85 * a
        noise_sigma = max(noise_sigma, rng.uniform(3.0, 6.0) / 255.0)
    elif condition == 'motion_blur':
        n = int(rng.integers(5, 11))
        ang = math.radians(rng.uniform(-20, 20))
        k = np.zeros((n, n), np.float32)
        c = (n - 1) / 2
        for i in range(4 * n):
            t = i / (4 * n - 1) - 0.5
            k[int(round(c + t * (n - 1) * math.sin(ang))), int(round(c + t * (n - 1) * math.cos(ang)))] = 1
        img = cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)
    elif condition == 'low_contrast':
        mean = img.mean(axis=(0, 1), keepdims=True)
        grey = img.mean(axis=2, keepdims=True)
        img = 0.5 * img + 0.5 * grey
        img = mean + rng.uniform(-0.08, 0.12) + (img - mean) * rng.uniform(0.22, 0.4)
    elif condition == 'noise':
        img = img * rng.uniform(0.75, 0.95)
        noise_sigma = rng.uniform(14.0, 24.0) / 255.0
        img = img + rng.standard_normal((H, W, 3), dtype=np.float32) * (noise_sigma * 0.6)
    if noise_sigma > 0:
        img = img + rng.standard_normal((H, W, 1), dtype=np.float32) * noise_sigma \
            + rng.standard_normal((H, W, 3), dtype=np.float32) * (noise_sigma * 0.35)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
