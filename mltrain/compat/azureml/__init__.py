"""mltrain's stand-in for the Azure ML SDK v1 (``azureml-core``) inside a job: the in-script
``Run`` API, ``Model.Framework`` and ``ResourceConfiguration``. Anything else raises
:class:`azureml.core.NotSupportedByMltrain` naming what is missing."""

__version__ = "0.0.0+mltrain"
