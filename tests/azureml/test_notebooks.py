"""Azure ML's own submit-side code, unchanged, in real notebooks executed by a Jupyter kernel: the flow of
Azure's scikit-learn article (workspace from config.json, curated and conda environments,
ScriptRunConfig, submit, wait with output, register with framework and resources, no-code deploy, score
with the key) and its hyperparameter-tuning article (HyperDriveConfig). ``azureml.core`` resolves to
mltrain's stand-in because no azureml-core is installed. Both notebooks share one workspace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, run_notebook

pytestmark = pytest.mark.slow

SKLEARN_ARTICLE = [
    # connect to the workspace (Azure's config.json: its subscription fields are ignored, with a note)
    "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig, Model\n"
    "import azureml\n"
    "print('azureml from', azureml.__file__)\n"
    "ws = Workspace.from_config()\n"
    "print('workspace', ws.name)",
    # environments: curated, and from a conda specification
    "sklearn_env = Environment.get(workspace=ws, name='AzureML-Tutorial')\n"
    "conda_env = Environment.from_conda_specification(name='sklearn-env', file_path='conda.yml')\n"
    "print(sklearn_env.name, conda_env.name)",
    # the training run
    "src = ScriptRunConfig(source_directory='.', script='train_iris.py',\n"
    "                      arguments=['--kernel', 'linear', '--penalty', 1.0],\n"
    "                      compute_target='local', environment=sklearn_env)\n"
    "run = Experiment(workspace=ws, name='Tutorial-TrainIRIS').submit(src)\n"
    "run.wait_for_completion(show_output=True)",
    "print('status', run.get_status())\n"
    "print('metrics', run.get_metrics())\n"
    "print('files', run.get_file_names())\n"
    "run.download_file(name='outputs/model.joblib', output_file_path='model.joblib')\n"
    "print('details', run.get_details()['runDefinition']['arguments'])",
    # the same script in the conda environment
    "conda_run = Experiment(ws, 'Tutorial-TrainIRIS').submit(\n"
    "    ScriptRunConfig(source_directory='.', script='train_iris.py', arguments=['--kernel', 'rbf'],\n"
    "                    environment=conda_env))\n"
    "conda_run.wait_for_completion(show_output=False)\n"
    "print('conda', conda_run.get_status(), conda_run.get_metrics()['Kernel type'])",
    # register with the framework and resources
    "from azureml.core.resource_configuration import ResourceConfiguration\n"
    "model = run.register_model(model_name='sklearn-iris', model_path='outputs/model.joblib',\n"
    "                           model_framework=Model.Framework.SCIKITLEARN, model_framework_version='1.7.2',\n"
    "                           resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5),\n"
    "                           tags={'area': 'iris'}, properties={'source': 'notebook'})\n"
    "print('model', model.name, model.version)",
    # no-code deployment, scoring with the key
    "service = Model.deploy(ws, 'my-sklearn-service', [model])\n"
    "service.wait_for_deployment(show_output=True)\n"
    "print('state', service.state)",
    "import json, urllib.request, urllib.error\n"
    "primary, secondary = service.get_keys()\n"
    "body = json.dumps({'data': [[0.1, 2.3, 4.1, 2.0], [0.2, 1.8, 3.9, 2.1]]}).encode()\n"
    "request = urllib.request.Request(service.scoring_uri, data=body, method='POST',\n"
    "    headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + primary})\n"
    "print('scored', json.loads(urllib.request.urlopen(request).read()))\n"
    "try:\n"
    "    urllib.request.urlopen(urllib.request.Request(service.scoring_uri, data=body, method='POST'))\n"
    "except urllib.error.HTTPError as exc:\n"
    "    print('without key', exc.code)\n"
    "print('run()', service.run(json.dumps({'data': [[6.7, 3.0, 5.2, 2.3]]})))\n"
    "print('swagger', service.swagger_uri)",
    "print('logs', 'serving my-sklearn-service' in service.get_logs())\n"
    "print('listed', [(m.name, m.version) for m in Model.list(ws)])\n"
    "print('by version', Model(ws, 'sklearn-iris', version=1).model_framework)\n"
    "service.delete()\n"
    "print('deleted', 'my-sklearn-service' not in ws.webservices)",
]

HYPERDRIVE_ARTICLE = [
    "from azureml.core import Workspace, Experiment, Environment, ScriptRunConfig\n"
    "from azureml.train.hyperdrive import (RandomParameterSampling, BanditPolicy, HyperDriveConfig,\n"
    "                                      PrimaryMetricGoal, choice, uniform)\n"
    "ws = Workspace.from_config()\n"
    "env = Environment.get(ws, 'AzureML-sklearn-1.0-ubuntu20.04-py38-cpu')\n"
    "src = ScriptRunConfig(source_directory='.', script='train_iris.py',\n"
    "                      arguments=['--kernel', 'linear', '--penalty', 1.0], environment=env)",
    "param_sampling = RandomParameterSampling({'--kernel': choice('linear', 'rbf', 'poly'),\n"
    "                                          '--penalty': uniform(0.05, 2.0)})\n"
    "policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=5)\n"
    "hd_config = HyperDriveConfig(run_config=src, hyperparameter_sampling=param_sampling, policy=policy,\n"
    "                             primary_metric_name='Accuracy', primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,\n"
    "                             max_total_runs=4, max_concurrent_runs=2)\n"
    "hyperdrive_run = Experiment(ws, 'iris-hyperdrive').submit(hd_config)\n"
    "hyperdrive_run.wait_for_completion(show_output=True)\n"
    "print('status', hyperdrive_run.get_status())",
    "best_run = hyperdrive_run.get_best_run_by_primary_metric()\n"
    "print('best', best_run.id, best_run.get_metrics()['Accuracy'])\n"
    "print('arguments', best_run.get_details()['runDefinition']['arguments'])\n"
    "children = hyperdrive_run.get_children_sorted_by_primary_metric()\n"
    "print('children', len(children), children[0]['run_id'] == best_run.id, children[0]['best_primary_metric'])\n"
    "model = best_run.register_model(model_name='iris-best', model_path='outputs/model.joblib')\n"
    "print('model', model.id)",
]


@pytest.fixture(scope="module")
def azure_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder as Azure's article has it: the training script, a conda file and Azure's config.json."""
    folder = tmp_path_factory.mktemp("azure-notebook")
    shutil.copy(ROOT / "examples" / "azureml" / "train_iris.py", folder / "train_iris.py")
    shutil.copy(ROOT / "examples" / "iris" / "conda.yml", folder / "conda.yml")
    config = {"subscription_id": "00000000-aaaa", "resource_group": "my-rg", "workspace_name": "my-workspace"}
    (folder / "config.json").write_text(json.dumps(config))
    yield folder
    subprocess.run(  # a failed test leaves no server behind
        [sys.executable, "-m", "mltrain.cli.main", "endpoints", "delete", "my-sklearn-service", "--missing-ok"],
        cwd=folder,
        capture_output=True,
    )


def test_azure_sklearn_article_runs_unchanged(azure_project, cli_json):
    out = run_notebook(SKLEARN_ARTICLE, azure_project)
    assert "/mltrain/compat/azureml/__init__.py" in out[0] and "workspace my-workspace" in out[0]
    assert "subscription_id, resource_group ignored" in out[0]
    assert "AzureML-Tutorial sklearn-env" in out[1]
    assert "Accuracy of SVM classifier on test set" in out[2]  # the script's output, streamed
    assert "status Completed" in out[3] and "'Kernel type': 'linear'" in out[3]
    assert "outputs/model.joblib" in out[3] and "['--kernel', 'linear', '--penalty', '1.0']" in out[3]
    assert (azure_project / "model.joblib").read_bytes()[:1] == b"\x80"
    assert "conda Completed rbf" in out[4]
    assert "model sklearn-iris 1" in out[5]
    assert "state Healthy" in out[6]
    assert "scored {'predictions': [2, 2]}" in out[7] and "without key 401" in out[7]
    assert "run() {'predictions': [2]}" in out[7] and "/swagger.json" in out[7]
    assert "logs True" in out[8] and "listed [('sklearn-iris', 1)]" in out[8]
    assert "by version ScikitLearn" in out[8] and "deleted True" in out[8]
    model = cli_json("models", "show", "sklearn-iris:1", cwd=azure_project)
    assert (model["framework"], model["framework_version"], model["cpu"], model["memory_gb"]) == (
        "ScikitLearn",
        "1.7.2",
        1,
        0.5,
    )
    assert model["tags"] == {"area": "iris"} and model["properties"] == {"source": "notebook"}
    runs = cli_json("runs", "list", "-e", "Tutorial-TrainIRIS", cwd=azure_project)
    assert {r["env_name"] for r in runs} == {"sklearn", "sklearn-env"}
    assert cli_json("endpoints", "list", cwd=azure_project) == []


def test_azure_hyperdrive_article_runs_as_an_mltrain_sweep(azure_project, cli_json):
    out = run_notebook(HYPERDRIVE_ARTICLE, azure_project)
    assert "status Completed" in out[1] and "Sweep " in out[1]
    best_id = out[2].split("best ", 1)[1].split()[0]
    assert "children 4 True" in out[2] and "model iris-best:1" in out[2]
    sweep = cli_json(
        "runs", "show", cli_json("runs", "show", best_id, cwd=azure_project)["parent_run_id"], cwd=azure_project
    )
    assert sweep["tags"]["mltrain.sweep.sampler"] == "random" and sweep["tags"]["mltrain.sweep.best_run"] == best_id
    assert sweep["config"]["sweep"]["early_termination"]["policy"] == "bandit"
    assert sweep["config"]["sweep"]["search_space"] == {
        "job.arguments.kernel": "choice(linear, rbf, poly)",
        "job.arguments.penalty": "uniform(0.05, 2.0)",
    }
    assert cli_json("models", "show", "iris-best:1", cwd=azure_project)["run_id"] == best_id
