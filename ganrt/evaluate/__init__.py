"""Judging models: fidelity metrics against real data, PSNR/SSIM, and the latent-space tools."""
