"""nbfl: federated learning driven from a Jupyter notebook.

The controller holds the global model and drives rounds; clients join over ZeroMQ,
train on their own data and send back only weights. The core needs numpy and pyzmq;
torch enters through :mod:`nbfl.torch_adapter`.
"""

from .client import Client
from .controller import ClientInfo, Controller, Result
from .tasks import TaskContext, Update, task
from .workflows import FedAvg, RoundFailed

__version__ = "0.1.0"

__all__ = ["Client", "ClientInfo", "Controller", "FedAvg", "Result", "RoundFailed", "TaskContext", "Update", "task"]
