# A trainer written for the seed (NVIDIA FLARE 2.0's Executor API, the blog's SimpleTrainer
# with its local training loop written out, returning WEIGHT_DIFF). Only the imports
# marked "nbfl:" differ from the seed version; every other line is as written for it.
import os.path

import torch
from torch import nn
from torch.optim import SGD
from torch.utils.data.dataloader import DataLoader

# nbfl: was  from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
# nbfl: was  from nvflare.apis.executor import Executor
# nbfl: was  from nvflare.apis.fl_constant import ReturnCode
# nbfl: was  from nvflare.apis.fl_context import FLContext
# nbfl: was  from nvflare.apis.shareable import Shareable, make_reply
# nbfl: was  from nvflare.apis.signal import Signal
# nbfl: was  from nvflare.app_common.app_constant import AppConstants
from nbfl.participant.executor import (DXO, AppConstants, DataKind, Executor, FLContext, MetaKey, ReturnCode,
                                      Shareable, Signal, from_shareable, make_reply)
# nbfl: was  from torchvision.datasets import CIFAR10
# nbfl: was  from torchvision.transforms import Compose, ToTensor, Normalize
from nbfl.data.vision import CIFAR10, Compose, Normalize, ToTensor

from .simple_network import SimpleNetwork


class SimpleTrainer(Executor):
    def __init__(self, lr=0.01, epochs=5, train_task_name=AppConstants.TASK_TRAIN):
        super(SimpleTrainer, self).__init__()

        self._lr = lr
        self._epochs = epochs
        self._train_task_name = train_task_name

        # Training setup
        self.model = SimpleNetwork()
        self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.loss = nn.CrossEntropyLoss()
        self.optimizer = SGD(self.model.parameters(), lr=lr, momentum=0.9)

        # Create CIFAR10 dataset for training.
        transforms = Compose([
            ToTensor(),
            Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ])
        self._train_dataset = CIFAR10(root=os.path.expanduser("~/data"), transform=transforms, download=True, train=True)
        self._train_loader = DataLoader(self._train_dataset, batch_size=4, shuffle=True)
        self._n_iterations = len(self._train_loader)

    def local_train(self, fl_ctx, weights, abort_signal):
        # Set the model weights
        self.model.load_state_dict(state_dict=weights)

        # Basic training
        self.model.train()
        for epoch in range(self._epochs):
            running_loss = 0.0
            for i, batch in enumerate(self._train_loader):
                if abort_signal.triggered:
                    # If abort_signal is triggered, we simply return.
                    # The outside function will check it again and decide steps to take.
                    return

                images, labels = batch[0].to(self.device), batch[1].to(self.device)
                self.optimizer.zero_grad()

                predictions = self.model(images)
                cost = self.loss(predictions, labels)
                cost.backward()
                self.optimizer.step()

                running_loss += (cost.cpu().detach().numpy() / images.size()[0])
                if i % 3000 == 0:
                    self.log_info(fl_ctx, f"Epoch: {epoch}/{self._epochs}, Iteration: {i}, "
                                          f"Loss: {running_loss / 3000}")
                    running_loss = 0.0

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        try:
            if task_name == self._train_task_name:
                # Get model weights
                try:
                    dxo = from_shareable(shareable)
                except:
                    self.log_error(fl_ctx, "Unable to extract dxo from shareable.")
                    return make_reply(ReturnCode.BAD_TASK_DATA)

                # Ensure data kind is weights.
                if not dxo.data_kind == DataKind.WEIGHTS:
                    self.log_error(fl_ctx, f"data_kind expected WEIGHTS but got {dxo.data_kind} instead.")
                    return make_reply(ReturnCode.BAD_TASK_DATA)

                # Convert weights to tensor. Run training
                torch_weights = {k: torch.as_tensor(v) for k, v in dxo.data.items()}
                self.local_train(fl_ctx, torch_weights, abort_signal)

                # Check the abort_signal after training.
                # local_train returns early if abort_signal is triggered.
                if abort_signal.triggered:
                    return make_reply(ReturnCode.TASK_ABORTED)

                # Get the new state dict and send the difference to the received weights
                new_weights = self.model.state_dict()
                new_weights = {k: v.cpu().numpy() for k, v in new_weights.items()}
                weight_diff = {k: new_weights[k] - dxo.data[k] for k in new_weights}

                outgoing_dxo = DXO(data_kind=DataKind.WEIGHT_DIFF, data=weight_diff)
                outgoing_dxo.set_meta_prop(MetaKey.NUM_STEPS_CURRENT_ROUND, self._n_iterations)
                return outgoing_dxo.to_shareable()
            else:
                return make_reply(ReturnCode.TASK_UNKNOWN)
        except:
            self.log_exception(fl_ctx, f"Exception in simple trainer.")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
