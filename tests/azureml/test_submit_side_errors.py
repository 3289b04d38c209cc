"""Every part of Azure's submit-side SDK that mltrain's stand-in does not provide fails with an error
naming the call and the mltrain way to do it; bad arguments fail before anything runs."""

from __future__ import annotations

import pytest
from azureml.core import Environment, Experiment, Model, ScriptRunConfig, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.core.webservice import AciWebservice, Webservice
from azureml.train import hyperdrive as hd
from support import write_script


@pytest.fixture
def ws(project):
    return Workspace.from_config()


def _src() -> ScriptRunConfig:
    return ScriptRunConfig(source_directory="src", script="train.py", arguments=["--lr", 1])


UNSUPPORTED = {
    "Workspace.create": (lambda ws: Workspace.create("x"), "MLTRAIN_WORKSPACE"),
    "Workspace.datastores": (lambda ws: ws.datastores, "supported: from_config"),
    "Environment.register": (lambda ws: Environment.get(ws, "sklearn").register(ws), "conf/environment"),
    "Environment.get(name='AzureML-PyTorch-1.6')": (
        lambda ws: Environment.get(ws, "AzureML-PyTorch-1.6"),
        "known environments: AzureML-Tutorial, AzureML-sklearn-*, conda, sklearn, system",
    ),
    "Environment.build": (lambda ws: Environment("e").build(ws), "conf/environment/NAME.yaml"),
    "ComputeTarget.create": (lambda ws: ComputeTarget.create(ws, "c", None), "conf/compute/NAME.yaml"),
    "AmlCompute.provisioning_configuration": (
        lambda ws: AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2"),
        "ComputeTarget(ws, NAME)",
    ),
    "ScriptRunConfig(run_config=...)": (
        lambda ws: ScriptRunConfig(source_directory=".", script="t.py", run_config=object()),
        "compute_target and environment",
    ),
    "Experiment.submit(object)": (lambda ws: Experiment(ws, "e").submit(object()), "a ScriptRunConfig or"),
    "Experiment.submit(run_config=...)": (
        lambda ws: Experiment(ws, "e").submit(_src(), run_config=1),
        "give the config",
    ),
    "Model.deploy(inference_config=...)": (
        lambda ws: Model.deploy(ws, "svc", [], inference_config=object()),
        "without a scoring script",
    ),
    "Model.get_model_path": (lambda ws: Model.get_model_path("m"), "without a scoring script"),
    "AciWebservice.deploy_configuration(dns_name_label=...)": (
        lambda ws: AciWebservice.deploy_configuration(cpu_cores=1, dns_name_label="x"),
        "give cpu_cores, memory_gb, auth_enabled",
    ),
    "hyperdrive.normal": (lambda ws: hd.normal(0, 1), "use choice, uniform, loguniform, quniform or randint"),
    "HyperDriveConfig(estimator=...)": (
        lambda ws: hd.HyperDriveConfig(
            hyperparameter_sampling=hd.GridParameterSampling({"--a": hd.choice(1, 2)}),
            primary_metric_name="m",
            primary_metric_goal=hd.PrimaryMetricGoal.MAXIMIZE,
            estimator=object(),
        ),
        "run_config=ScriptRunConfig",
    ),
    "HyperDriveConfig(resume_from=...)": (
        lambda ws: hd.HyperDriveConfig(
            run_config=_src(),
            hyperparameter_sampling=hd.GridParameterSampling({"--a": hd.choice(1, 2)}),
            primary_metric_name="m",
            primary_metric_goal="MAXIMIZE",
            resume_from=object(),
        ),
        "sweep.resume=ID",
    ),
    "HyperDriveConfig over a script with the argument 'positional'": (
        lambda ws: hd.HyperDriveConfig(
            run_config=ScriptRunConfig(source_directory=".", script="t.py", arguments=["positional"]),
            hyperparameter_sampling=hd.GridParameterSampling({"--a": hd.choice(1, 2)}),
            primary_metric_name="m",
            primary_metric_goal="MAXIMIZE",
        ).overrides(ws._ws.path),
        "--name value pairs",
    ),
}


@pytest.mark.parametrize("call", sorted(UNSUPPORTED))
def test_unsupported_calls_name_themselves_and_the_mltrain_way(ws, call):
    make, hint = UNSUPPORTED[call]
    with pytest.raises(NotImplementedError) as err:
        make(ws)
    text = str(err.value)
    assert f"{call} is not supported by mltrain's azureml stand-in" in text
    assert hint in text


def test_unsupported_imports_name_themselves():
    with pytest.raises(ImportError, match=r"azureml.core.Dataset is not supported .* supported here: ComputeTarget"):
        from azureml.core import Dataset  # noqa: F401
    with pytest.raises(ImportError, match=r"azureml.widgets.RunDetails is not supported .*mltrain ui"):
        from azureml.widgets import RunDetails  # noqa: F401


def test_unknown_compute_target_lists_the_configured_ones(ws):
    with pytest.raises(ComputeTargetException, match="known: cluster, docker, local, ssh"):
        ComputeTarget(ws, "gpu-cluster")
    assert sorted(ws.compute_targets) == ["cluster", "docker", "local", "ssh"]
    assert ComputeTarget(ws, "docker").overrides() == ["+compute=docker"]


def test_bad_arguments_fail_before_anything_runs(ws, project):
    with pytest.raises(ValueError, match="needs script="):
        ScriptRunConfig(source_directory=".")
    with pytest.raises(ValueError, match="takes choice"):
        hd.GridParameterSampling({"--a": hd.uniform(0, 1)})
    with pytest.raises(ValueError, match="needs max_total_runs"):
        hd.HyperDriveConfig(
            run_config=_src(),
            hyperparameter_sampling=hd.RandomParameterSampling({"--a": hd.uniform(0, 1)}),
            primary_metric_name="m",
            primary_metric_goal="MAXIMIZE",
        )
    with pytest.raises(ValueError, match="one of slack_factor and slack_amount"):
        hd.BanditPolicy(evaluation_interval=1)
    with pytest.raises(FileNotFoundError, match="missing.yml does not exist"):
        Environment.from_conda_specification("e", "missing.yml")
    with pytest.raises(Exception, match="WebserviceNotFound: nope"):
        Webservice(ws, "nope")
    write_script(project / "src", "train.py", "print('never runs')\n")
    with pytest.raises(Exception, match="Could not override 'job.argumentz'"):
        ws._api.submit(*_src().overrides(ws._ws.path), "job.argumentz=1")
    assert not ws._ws.runs()


def test_from_config_notes_the_azure_fields_it_ignores(project, capsys):
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text('{"subscription_id": "s", "workspace_name": "team"}')
    ws = Workspace.from_config()
    assert ws.name == "team" and ws._ws.path == project / ".mltrain"
    assert "subscription_id ignored: the workspace is mltrain's own" in capsys.readouterr().err
    assert Workspace.get("other", subscription_id="s")._ws.path == project / ".mltrain"


def test_hyperdrive_config_becomes_sweep_overrides(ws, project):
    config = hd.HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=".", script="t.py", arguments=["--kernel", "rbf", "--verbose"]),
        hyperparameter_sampling=hd.BayesianParameterSampling(
            {"--C": hd.loguniform(-2, 2), "--gamma": hd.quniform(0.1, 1, 0.1), "--depth": hd.randint(5)}
        ),
        policy=hd.TruncationSelectionPolicy(truncation_percentage=30, delay_evaluation=2),
        primary_metric_name="Accuracy",
        primary_metric_goal=hd.PrimaryMetricGoal.MINIMIZE,
        max_total_runs=6,
        max_concurrent_runs=2,
        max_duration_minutes=1.5,
    )
    out = config.overrides(ws._ws.path)
    assert "job.arguments={kernel:'rbf',verbose:true,C:null,gamma:null,depth:null}" in out
    space = next(o for o in out if o.startswith("++sweep.search_space="))
    assert "job.arguments.C:'loguniform(0.1353352832366127, 7.38905609893065)'" in space
    assert "job.arguments.gamma:'quniform(0.1, 1, 0.1)'" in space and "job.arguments.depth:'randint(0, 5)'" in space
    assert {"sweep.sampler=bayesian", "sweep.primary_metric.goal=minimize", "sweep.max_total_runs=6"} <= set(out)
    assert {
        "sweep.early_termination.policy=truncation_selection",
        "sweep.early_termination.truncation_percentage=30",
    } <= set(out)
    assert "sweep.max_duration_s=90.0" in out and "sweep.max_concurrent_runs=2" in out
