"""A training step of ``pdediff train``: torch's and pdediff's thread pools in one process.

Four cases on one batch: the cold-diffusion Perona–Malik step with pdediff's
threading as configured, the same step with pdediff's kernels serial (torch's
pool alone has the cores), and its two parts alone (pdediff's degradation;
torch's forward, backward and Adam step).  The step should cost no more than
its parts, and pdediff's threads should not slow it.
"""

from __future__ import annotations

from ._spec import Unavailable, is_gpu_array, need

#: The model of the training-step cases: ``pdediff train``'s UNet (:func:`pdediff.torch.train_run`'s defaults).
TRAIN_UNET = {"base": 32, "mults": (1, 2), "num_res_blocks": 1}


class TrainStep:
    """One training step of a cold-diffusion Perona–Malik model, as :func:`pdediff.torch.train` takes it.

    ``pdediff train``'s ``cold-pm`` process at the batch's image size (:func:`pdediff.torch.make_process`:
    50 levels, ``kappa = 1``, its iterations per level) and UNet (:data:`TRAIN_UNET`), the batch mapped to
    [-1, 1], timesteps drawn once (seeded, so every call does the same work): the forward degradation by
    pdediff's Perona–Malik kernels, then forward, backward and an Adam step in torch's own thread pool.
    :meth:`degrade` and :meth:`model` are its two parts alone (the latter on a degraded batch computed once).
    Global RNG state is left as it was.
    """

    def __init__(self, u):
        if is_gpu_array(u):
            raise Unavailable("the torch cases run on CPU tensors")
        torch = need("torch", "PyTorch")
        from pdediff.torch import UNet, make_process

        self.F = torch.nn.functional
        self.x0 = torch.from_numpy(u) * 2 - 1
        n = u.shape[0]
        self.process = make_process("cold-pm", image_size=u.shape[-2:])
        gen = torch.Generator().manual_seed(0)
        self.t = self.process.sample_timesteps(n, gen)
        self.noise = torch.randn(u.shape, generator=gen, dtype=self.x0.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = UNet(u.shape[1], **TRAIN_UNET).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.xt = self.degrade()

    def degrade(self):
        """The forward degradation of the batch (pdediff's Perona–Malik kernels)."""
        return self.process.add_noise(self.x0, self.noise, self.t)

    def model(self, xt=None):
        """Forward, backward and Adam step on ``xt`` (default: the batch degraded once)."""
        p = self.process
        xt = self.xt if xt is None else xt
        out = self.net(p.scale_model_input(xt, self.t), self.t)
        loss = self.F.mse_loss(out, p.training_target(self.x0, self.noise, self.t))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def step(self):
        """The whole step: degradation, then the model's update."""
        self.model(self.degrade())


def serial_kernels(fn):
    """``fn`` with pdediff's CPU kernels serial for each call.

    The threading policy in force (:func:`pdediff.kernels.cpu.threading_policy`)
    is put in ``"serial"`` mode for the call and its mode restored after: the
    very object stays in place, so an adaptive policy keeps its estimates.
    """
    from pdediff.kernels.cpu import threading_policy

    def run():
        policy = threading_policy()
        mode, policy.mode = policy.mode, "serial"
        try:
            return fn()
        finally:
            policy.mode = mode

    return run


def torch_train_step(u):
    """A training step with pdediff's threading as configured (adaptive by default) next to torch's pool."""
    return TrainStep(u).step


def torch_train_step_serial(u):
    """The same step with pdediff's kernels serial: torch's pool alone has the cores."""
    return serial_kernels(TrainStep(u).step)


def torch_train_degrade(u):
    """The step's forward degradation alone (pdediff's Perona–Malik kernels)."""
    return TrainStep(u).degrade


def torch_train_model(u):
    """The step's torch part alone: forward, backward and Adam step on a batch degraded once."""
    return TrainStep(u).model
