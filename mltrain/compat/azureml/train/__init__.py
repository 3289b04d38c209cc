"""``azureml.train``: hyperparameter tuning (``azureml.train.hyperdrive``) of mltrain's stand-in."""
