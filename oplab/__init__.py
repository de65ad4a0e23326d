"""oplab: a lab for the optimization of deep networks.

The core is a one-way pipeline: a study's arms become trial configs
(`oplab.config`), the runner (`oplab.runner`) trains each (`oplab.train`) and
stores a Record (`oplab.records`); analysis (`oplab.stats`, `oplab.report`)
reads the stored records only.

Importing the package imports `oplab.data` (image datasets) and `oplab.tasks`
(synthetic tasks), so every dataset is in `oplab.dataset.DATASETS` whenever
anything in oplab is imported, and `oplab.pretrain`, so that the greedy pre-training
initializer is in `oplab.init.INITS`, and `oplab.layerstats`, `oplab.probes`, `oplab.secondorder` and
`oplab.init_rnn` (RNN initializers), whose monitors register into `oplab.monitors.MONITORS`, and
`oplab.recurrent`, whose normalized LSTM registers as a model, and `oplab.saddles` (a monitor and a
dataset).
"""

__version__ = "0.1.0"

# register every dataset, initializer, monitor and model
from oplab import (  # noqa: E402,F401
    data,
    dynamics,
    hessianfree,
    init_rnn,
    layerstats,
    pretrain,
    probes,
    recurrent,
    saddles,
    secondorder,
    tasks,
)
