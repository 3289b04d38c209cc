"""Scoring over real HTTP: predictions equal the model's own, in both row forms and every method."""

from __future__ import annotations

import random
import threading

import numpy as np

from .helpers import request, sha256_hex


def test_list_rows_give_the_models_predictions(svc_server, svc_file, iris):
    X, _ = iris
    resp = svc_server.score({"data": X.values.tolist()})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["predictions"] == svc_file.model.predict(X).tolist()


def test_object_rows_in_any_key_order(svc_server, svc_file, iris):
    X, _ = iris
    rng = random.Random(7)
    rows = []
    for record in X.to_dict(orient="records"):
        items = list(record.items())
        rng.shuffle(items)
        rows.append(dict(items))
    resp = svc_server.score({"data": rows})
    assert resp.status == 200, resp.body
    assert resp.json()["predictions"] == svc_file.model.predict(X).tolist()


def test_decision_function(svc_server, svc_file, iris):
    X, _ = iris
    resp = svc_server.score({"data": X.values[:20].tolist(), "method": "decision_function"})
    assert resp.status == 200, resp.body
    expected = svc_file.model.decision_function(X.iloc[:20])
    np.testing.assert_allclose(resp.json()["predictions"], expected, rtol=1e-12)


def test_predict_proba_and_string_labels(skops_server, skops_file, iris):
    X, _ = iris
    rows = X.values[::7].tolist()
    labels = skops_server.score({"data": rows}).json()["predictions"]
    assert labels == skops_file.model.predict(X.iloc[::7]).tolist()
    assert set(labels) <= {"setosa", "versicolor", "virginica"}
    resp = skops_server.score({"data": rows, "method": "predict_proba"}, key=None)
    assert resp.status == 200, resp.body
    np.testing.assert_allclose(resp.json()["predictions"], skops_file.model.predict_proba(X.iloc[::7]), rtol=1e-9)


def test_concurrent_clients_each_get_their_own_rows(svc_server, svc_file, iris):
    """Concurrent requests may share one model call; each must still get exactly its own predictions."""
    X, _ = iris
    expected = svc_file.model.predict(X).tolist()
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(15):
            idx = rng.sample(range(len(X)), rng.randint(1, 5))
            resp = svc_server.score({"data": X.values[idx].tolist()})
            got = resp.json().get("predictions")
            if got != [expected[i] for i in idx]:
                failures.append(f"rows {idx}: got {got}")

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_model_error_on_valid_looking_input_is_422(skops_server, iris):
    row = [5.1, 3.5, 1.4, 2e6]  # the model's custom step refuses values above 1e6
    resp = skops_server.score({"data": [row]}, key=None)
    assert resp.status == 422
    assert "out of range" in resp.json()["error"]
    assert skops_server.score({"data": [[5.1, 3.5, 1.4, 0.2]]}, key=None).status == 200


def test_in_process_app_accepts_missing_values_for_models_that_take_nan(serve_inprocess, serving_dir, iris):
    """create_app() in-process; HistGradientBoosting takes NaN, so null passes while Infinity is refused."""
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mltrain.serving import create_app

    X, y = iris
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    path = serving_dir / "hgb.joblib"
    joblib.dump(model, path)
    app = create_app({"model_path": str(path), "model_sha256": sha256_hex(path.read_bytes()), "model_name": "hgb"})
    server = serve_inprocess(app)
    resp = server.score({"data": [[5.1, None, 1.4, 0.2]]})
    assert resp.status == 200, resp.body
    assert resp.json()["predictions"] == model.predict(np.array([[5.1, np.nan, 1.4, 0.2]])).tolist()
    resp = request(
        server.url, "POST", "/score", b'{"data": [[5.1, Infinity, 1.4, 0.2]]}', {"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "Infinity" in resp.json()["error"]
