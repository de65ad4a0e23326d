"""oplab: a lab for the optimization of deep networks.

The core is a one-way pipeline: a study's arms become trial configs
(`oplab.config`), the runner (`oplab.runner`) trains each (`oplab.train`) and
stores a Record (`oplab.records`); analysis (`oplab.stats`, `oplab.report`)
reads the stored records only.
"""

__version__ = "0.1.0"
