"""One torch thread for the whole suite: the tests' tensors are small, where intra-op threads cost more than they
give, and a fixed thread count keeps float reductions reproducible from run to run."""
import torch

torch.set_num_threads(1)
