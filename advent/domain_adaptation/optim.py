"""The segmenter's SGD as the original ran it (TRAIN.ORIGINAL_SGD, the default).

The original built its optimiser from `get_1x_lr_params_no_scale`, which walks
`block.modules()` for every backbone block and yields `sub.parameters()` (recursive) for
each sub-module, so a parameter comes once per module on its path: the stem conv once,
a bottleneck conv three times (layerX, layerX.Y, the conv), a downsample conv four times.
PyTorch 0.4.1 kept those duplicates and its `SGD.step` updated a parameter once per
occurrence, in sequence, adding the weight decay to `p.grad` in place. The published
numbers and hyper-parameters come from that rule, so `OriginalSGD` applies it explicitly:
each parameter is held once (torch.optim and the gradient scaler see no duplicates) with
its occurrence count, and the 0.4.1 update is repeated that many times.
"""
import torch

OCCURRENCES = 'occurrences'  # per-group key: the occurrence count of each parameter, in order


def original_occurrences(blocks):
    """{id(param): count} as the original's parameter generator yields the trainable
    parameters of `blocks` (for block in blocks, for sub in block.modules(), for p in
    sub.parameters())."""
    counts = {}
    for block in blocks:
        for sub in block.modules():
            for param in sub.parameters():
                if param.requires_grad:
                    counts[id(param)] = counts.get(id(param), 0) + 1
    return counts


def saved_by_original_sgd(optimizer_state):
    """Whether a state dict was written by OriginalSGD (rather than torch.optim.SGD)."""
    return all(OCCURRENCES in group for group in optimizer_state['param_groups'])


class OriginalSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay, each parameter updated once per occurrence as
    PyTorch 0.4.1 did with a parameter list holding it that many times.

    `param_groups` is a list of dicts with 'params' (each parameter once) and optionally
    'lr'; `occurrences` maps id(param) to its count, parameters not in it occur once. The
    counts travel in the param groups, so state_dict() records them and a resumed run
    uses the same ones.
    """

    def __init__(self, param_groups, occurrences, lr, momentum, weight_decay):
        groups = []
        for group in param_groups:
            params = list(group['params'])
            if len({id(p) for p in params}) != len(params):
                raise ValueError('OriginalSGD: a parameter group lists a parameter twice; pass each parameter '
                                 'once and its count in `occurrences`')
            groups.append(dict(group, params=params, **{OCCURRENCES: [occurrences.get(id(p), 1) for p in params]}))
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def load_state_dict(self, state_dict):
        if not saved_by_original_sgd(state_dict):
            raise ValueError('the optimiser state was saved by textbook SGD (TRAIN.ORIGINAL_SGD False), '
                             'this run uses the original update (TRAIN.ORIGINAL_SGD True)')
        mine = [group[OCCURRENCES] for group in self.param_groups]
        saved = [list(group[OCCURRENCES]) for group in state_dict['param_groups']]
        if saved != mine:
            raise ValueError('the optimiser state holds other occurrence counts than this model gives: '
                             'a state of another model?')
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group['lr'], group['momentum'], group['weight_decay']
            for param, count in zip(group['params'], group[OCCURRENCES]):
                if param.grad is None:
                    continue
                # The occurrences of one parameter touch nothing but its own value, gradient and
                # buffer, so applying them back to back equals 0.4.1's interleaved order.
                d_p = param.grad
                for _ in range(count):
                    if weight_decay != 0:
                        d_p.add_(param, alpha=weight_decay)  # in place: the decay terms accumulate
                    if momentum != 0:
                        state = self.state[param]
                        if 'momentum_buffer' not in state:
                            state['momentum_buffer'] = torch.zeros_like(param)
                        buf = state['momentum_buffer']
                        buf.mul_(momentum).add_(d_p)
                        param.add_(buf, alpha=-lr)
                    else:
                        param.add_(d_p, alpha=-lr)
        return loss
